//! The web console at `/ui/`: a single page of hand-written HTML, CSS and JavaScript
//! embedded in the binary, which calls the public HTTP API from the browser with the
//! caller's own token. Nothing here reads the store or the pool: what the console shows,
//! any API client can see.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

/// One embedded file: its path under `/ui/`, its media type and its content.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $media_type:expr) => {
        Asset { path: $path, media_type: $media_type, body: include_str!(concat!("assets/", $path)) }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console. A page is a module of `js/`; `app.js` routes between them.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("console.css", CSS),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/live.js", JS),
    asset!("js/nodes.js", JS),
    asset!("js/queue.js", JS),
    asset!("js/instances.js", JS),
    asset!("js/instance.js", JS),
    asset!("js/graph.js", JS),
    asset!("js/definitions.js", JS),
    asset!("js/editor.js", JS),
    asset!("js/summary.js", JS),
    asset!("js/timeline.js", JS),
    asset!("js/metrics.js", JS),
];

/// Only this origin's scripts and styles: the console loads nothing from elsewhere.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// `/ui` and `/ui/` (the page), `/ui/<asset>`. Any other path under `/ui/` is left to the
/// API's fallback, so an unknown file is the API's 404.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/ui", get(|| async { Redirect::permanent("/ui/") }));
    for asset in ASSETS {
        let serve = move || async move {
            let headers = [
                (header::CONTENT_TYPE, asset.media_type),
                // Assets change with the binary; revalidating is cheap next to a stale page.
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ];
            (headers, asset.body).into_response()
        };
        router = router.route(&format!("/ui/{}", asset.path), get(serve));
        if asset.path == "index.html" {
            router = router.route("/ui/", get(serve));
        }
    }
    router
}

/// Whether `path` is one of the console's files, which anyone the allow list admits may
/// read: they hold no data, and the page asks for a token when the API wants one.
pub fn is_console_path(path: &str) -> bool {
    path == "/ui"
        || path == "/ui/"
        || path.strip_prefix("/ui/").is_some_and(|rest| ASSETS.iter().any(|a| a.path == rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js") || a.path.ends_with(".html")) {
            for piece in asset.body.split(['"', '\'']).filter(|p| p.starts_with("./") && p.ends_with(".js")) {
                let dir = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let target = piece.trim_start_matches("./");
                let full = if dir.is_empty() { target.to_owned() } else { format!("{dir}/{target}") };
                assert!(served.contains(&full.as_str()), "{} imports {piece}, which is not served", asset.path);
            }
        }
    }

    #[test]
    fn console_paths_are_the_assets_only() {
        assert!(is_console_path("/ui"));
        assert!(is_console_path("/ui/"));
        assert!(is_console_path("/ui/js/app.js"));
        assert!(!is_console_path("/ui/js/missing.js"));
        assert!(!is_console_path("/uix"));
        assert!(!is_console_path("/api/v1/Actor/All"));
    }
}
