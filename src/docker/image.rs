//! Images on nodes: whether a node has one, and copying one from a node that has it to one
//! that does not (export on one engine, streamed into load on the other), so that nobody
//! builds images by hand on every node.

use std::time::Duration;

use bollard::query_parameters::ImportImageOptionsBuilder;
use futures::StreamExt;

use super::{DockerClient, DockerError};

/// How long moving one image between nodes may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(900);

impl DockerClient {
    /// Whether the image is present on this node.
    pub async fn has_image(&self, image: &str) -> Result<bool, DockerError> {
        match self.call("inspecting an image", self.docker.inspect_image(image)).await {
            Ok(_) => Ok(true),
            Err(DockerError::Engine {
                source: bollard::errors::Error::DockerResponseServerError { status_code: 404, .. },
                ..
            }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Loads `image` onto this node from `source`, streaming it without holding it whole.
    pub async fn copy_image_from(&self, source: &DockerClient, image: &str) -> Result<(), DockerError> {
        tracing::info!(node = %self.node, from = %source.node, %image, "loading image onto node");
        let exporter = source.docker.clone().with_timeout(TRANSFER_TIMEOUT);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
        let image_name = image.to_owned();
        let source_node = source.node.clone();
        let export = tokio::spawn(async move {
            let mut stream = exporter.export_image(&image_name);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| std::io::Error::other(format!("export from {source_node}: {e}")));
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let loader = self.docker.clone().with_timeout(TRANSFER_TIMEOUT);
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut progress = loader.import_image(options, bollard::body_try_stream(body), None);
        let mut result = Ok(());
        while let Some(step) = progress.next().await {
            if let Err(source) = step {
                result = Err(DockerError::Engine { node: self.node.clone(), doing: "loading an image", source });
                break;
            }
        }
        export.abort();
        result?;
        if self.has_image(image).await? {
            tracing::info!(node = %self.node, %image, "image loaded");
            Ok(())
        } else {
            Err(DockerError::Broken {
                node: self.node.clone(),
                doing: "loading an image",
                message: format!("{image} is still missing after the load"),
            })
        }
    }
}
