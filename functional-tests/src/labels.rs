//! Counting the containers that carry a label on an engine, running or not, so a test can
//! assert that nothing it started was left behind.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

/// How many containers on `docker` carry `label`: `key` (any value) or `key=value`.
pub async fn count_labelled(docker: &Docker, label: &str) -> Result<usize, bollard::errors::Error> {
    let filters = HashMap::from([("label", vec![label])]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    Ok(docker.list_containers(Some(options)).await?.len())
}

/// How many containers on `docker` carry every one of `labels` (`key` or `key=value`).
pub async fn count_labelled_all(docker: &Docker, labels: &[&str]) -> Result<usize, bollard::errors::Error> {
    let filters = HashMap::from([("label", labels.to_vec())]);
    let options = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
    Ok(docker.list_containers(Some(options)).await?.len())
}
