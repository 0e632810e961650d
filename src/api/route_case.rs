//! Paths match case-insensitively, as ASP.NET's routes do: JoyOI's SDK sends
//! `/api/v1/statemachineinstance/all` for `/api/v1/StateMachineInstance/All`. Before routing,
//! each request path is compared with the documented route templates, and the literal
//! segments of the one it matches are put back in their canonical spelling. Parameters
//! (`{id}`, `{name}`) are left exactly as sent.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use axum::http::uri::PathAndQuery;

/// One route template, split into segments; `None` stands for a parameter.
type Template = Vec<Option<String>>;

/// The documented route templates, to put request paths in their canonical spelling.
#[derive(Debug, Clone, Default)]
pub struct RouteCase {
    templates: Arc<Vec<Template>>,
}

impl RouteCase {
    /// Templates such as `/api/v1/Actor/{name}`.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> RouteCase {
        let templates = paths
            .into_iter()
            .map(|path| {
                segments(path)
                    .map(|s| if s.starts_with('{') && s.ends_with('}') { None } else { Some(s.to_owned()) })
                    .collect()
            })
            .collect();
        RouteCase { templates: Arc::new(templates) }
    }

    /// The canonical spelling of `path`, when it differs from the sent one only in the case
    /// of its literal segments. The template with the most literal segments wins, so
    /// `/actor/all` is `/Actor/All`, not an actor named `all`.
    pub fn canonical(&self, path: &str) -> Option<String> {
        let sent: Vec<&str> = segments(path).collect();
        let best = self
            .templates
            .iter()
            .filter(|template| {
                template.len() == sent.len()
                    && template.iter().zip(&sent).all(|(literal, given)| match literal {
                        Some(literal) => literal.eq_ignore_ascii_case(given),
                        None => !given.is_empty(),
                    })
            })
            .max_by_key(|template| template.iter().filter(|s| s.is_some()).count())?;
        let mut canonical = String::with_capacity(path.len());
        for (literal, given) in best.iter().zip(&sent) {
            canonical.push('/');
            canonical.push_str(literal.as_deref().unwrap_or(given));
        }
        if path.ends_with('/') && path.len() > 1 {
            canonical.push('/');
        }
        (canonical != path).then_some(canonical)
    }

    /// Rewrites the request's path to its canonical spelling (the query is kept).
    pub fn rewrite(&self, mut request: Request) -> Request {
        let Some(path) = self.canonical(request.uri().path()) else { return request };
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        // The canonical path is made of the sent path's own characters and the templates'.
        if let Ok(value) = PathAndQuery::try_from(path_and_query) {
            parts.path_and_query = Some(value);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
        request
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/').filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: Option<&str>) {
        let routes = RouteCase::new([
            "/api/v1/Actor/All",
            "/api/v1/Actor/{name}",
            "/api/v1/Actor",
            "/api/v1/Blob/{id}/content",
            "/api/v1/StateMachineInstance/All",
            "/api/v1/DockerNode/WaitingTasks",
            "/healthz",
        ]);
        assert_eq!(routes.canonical(path).as_deref(), expected, "canonical form of {path}");
    }

    #[test]
    fn literal_segments_take_their_canonical_case() {
        check("/api/v1/actor/all", Some("/api/v1/Actor/All"));
        check("/API/V1/ACTOR", Some("/api/v1/Actor"));
        check("/api/v1/statemachineinstance/all", Some("/api/v1/StateMachineInstance/All"));
        check("/api/v1/dockernode/waitingtasks", Some("/api/v1/DockerNode/WaitingTasks"));
        check("/HealthZ", Some("/healthz"));
    }

    #[test]
    fn parameters_keep_the_case_they_were_sent_in() {
        check("/api/v1/actor/MyActor", Some("/api/v1/Actor/MyActor"));
        check("/api/v1/blob/ABC/CONTENT", Some("/api/v1/Blob/ABC/content"));
    }

    #[test]
    fn canonical_and_unknown_paths_are_left_alone() {
        check("/api/v1/Actor/All", None);
        check("/api/v1/Actor/hello", None);
        check("/api/v1/nothing/here", None);
        check("/", None);
    }
}
