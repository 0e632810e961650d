//! `GET /api/v1/StateMachineInstance/{id}/graph`: an instance's dataflow as Graphviz DOT —
//! blobs (ellipses) flowing into actors (boxes) and out of them.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::envelope::ErrorBody;
use super::error::ApiError;
use super::extract::parse_id;
use crate::model::instance::{ActorInfo, Instance};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_graph))
}

/// Quotes a DOT identifier or label.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

/// The dataflow of an instance in DOT.
pub fn dot(instance: &Instance, actors: &[ActorInfo]) -> String {
    let mut blobs: BTreeMap<String, String> = BTreeMap::new();
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&format!("instance {}", instance.id)));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  label={};", quote(&format!("{} ({})", instance.name, instance.status.as_str())));
    for blob in &instance.initial_blobs {
        blobs.insert(blob.id.to_string(), blob.name.clone());
    }
    let mut edges = Vec::new();
    for (i, actor) in actors.iter().enumerate() {
        let node = format!("actor{i}");
        let mut label = actor.name.clone();
        if let Some(tag) = &actor.tag {
            let _ = write!(label, "\n{tag}");
        }
        let _ = write!(label, "\n{}", actor.status.as_str());
        let color = match actor.status.as_str() {
            "Succeeded" => "palegreen",
            "Failed" => "lightcoral",
            "Running" => "lightblue",
            _ => "lightgrey",
        };
        let _ = writeln!(out, "  {node} [shape=box, style=filled, fillcolor={color}, label={}];", quote(&label));
        for input in &actor.inputs {
            blobs.entry(input.id.to_string()).or_insert_with(|| input.name.clone());
            edges.push(format!("  {} -> {node} [label={}];", quote(&input.id.to_string()), quote(&input.name)));
        }
        for output in &actor.outputs {
            blobs.insert(output.id.to_string(), output.name.clone());
            edges.push(format!("  {node} -> {};", quote(&output.id.to_string())));
        }
    }
    for (id, name) in &blobs {
        let _ = writeln!(out, "  {} [shape=ellipse, label={}];", quote(id), quote(name));
    }
    for edge in edges {
        let _ = writeln!(out, "{edge}");
    }
    out.push_str("}\n");
    out
}

/// The instance's dataflow (actors and the blobs between them) as Graphviz DOT.
#[utoipa::path(get, path = "/api/v1/StateMachineInstance/{id}/graph", tag = "StateMachineInstance",
    responses((status = 200, content_type = "text/vnd.graphviz", body = String), (status = 404, body = ErrorBody)))]
async fn get_graph(State(state): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id("instance", &id)?;
    let instance = state.store.get_instance(id).await?;
    let actors = state.store.started_actors(&instance).await?;
    Ok(([(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")], dot(&instance, &actors)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::blob::BlobRef;
    use crate::model::instance::Status;

    #[test]
    fn blobs_flow_through_actors() {
        let source = BlobRef { id: uuid::Uuid::new_v4(), name: "Main.sh".into(), tag: None };
        let program = BlobRef { id: uuid::Uuid::new_v4(), name: "Main.out".into(), tag: None };
        let instance = Instance {
            id: uuid::Uuid::new_v4(),
            name: "judge".into(),
            status: Status::Succeeded,
            stage: None,
            started_actors: vec![],
            initial_blobs: vec![source.clone()],
            limitation: None,
            parameters: Default::default(),
            priority: 0,
            from_management_service: None,
            re_run_times: 0,
            exception: None,
            execution_key: None,
            run_by: None,
            result: None,
            created_at: chrono::Utc::now(),
            start_time: chrono::Utc::now(),
            end_time: None,
        };
        let compile = ActorInfo {
            name: "judge-compile".into(),
            start_time: chrono::Utc::now(),
            end_time: None,
            inputs: vec![source.clone()],
            outputs: vec![program.clone()],
            exceptions: vec![],
            status: crate::model::instance::ActorState::Succeeded,
            stage: Some("Compile".into()),
            tag: Some("say \"hi\"".into()),
            used_node: None,
            used_container: None,
        };
        let text = dot(&instance, &[compile]);
        assert!(text.starts_with("digraph"), "{text}");
        assert!(text.contains(&format!("\"{}\" -> actor0 [label=\"Main.sh\"];", source.id)), "{text}");
        assert!(text.contains(&format!("actor0 -> \"{}\";", program.id)), "{text}");
        assert!(text.contains("label=\"judge-compile\\nsay \\\"hi\\\"\\nSucceeded\""), "{text}");
        assert!(text.trim_end().ends_with('}'));
    }
}
