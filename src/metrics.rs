//! The series the service records as things happen, on `prometheus-client` (registry, metric
//! types, OpenMetrics text). `Metrics` is the service's cheap-to-clone handle; series read at
//! scrape time (instances, nodes, the queue) are registered by the `/metrics` route in a
//! registry of its own and written into the same text.
//! *Invariant:* knows nothing of HTTP, the database or Docker; label values are bounded sets
//! (route templates, node names, fixed words), never raw paths or ids.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of the OpenMetrics text format, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of actor time buckets: from a trivial actor to a long build.
pub const ACTOR_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Upper bounds (seconds) of queue wait buckets: from a free slot to a long backlog.
pub const QUEUE_BUCKETS: [f64; 10] = [0.005, 0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds (seconds) of the HTTP request duration buckets.
pub const HTTP_BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Label names with their values, in the order they are written.
pub type Labels<const N: usize> = [(&'static str, String); N];
/// A gauge holding a count.
pub type CountGauge = Gauge;
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

fn actor_histogram() -> Histogram {
    Histogram::new(ACTOR_BUCKETS)
}

fn queue_histogram() -> Histogram {
    Histogram::new(QUEUE_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// `[("name", "value"), …]` as label pairs.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels<N> {
    pairs.map(|(name, value)| (name, value.to_owned()))
}

/// How a callback delivery try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Delivered,
    /// Failed; it will be tried again.
    FailedAttempt,
    /// Failed, with no tries left (or a failure that is not worth retrying).
    GivenUp,
}

impl CallbackOutcome {
    const ALL: [CallbackOutcome; 3] =
        [CallbackOutcome::Delivered, CallbackOutcome::FailedAttempt, CallbackOutcome::GivenUp];

    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Delivered => "delivered",
            CallbackOutcome::FailedAttempt => "failed_attempt",
            CallbackOutcome::GivenUp => "given_up",
        }
    }
}

/// How a script went on after a call it waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptWait {
    /// It waited on its thread and went on.
    Live,
    /// It suspended and ran again from the top.
    Replayed,
}

impl ScriptWait {
    const ALL: [ScriptWait; 2] = [ScriptWait::Live, ScriptWait::Replayed];

    pub fn as_str(self) -> &'static str {
        match self {
            ScriptWait::Live => "live",
            ScriptWait::Replayed => "replayed",
        }
    }
}

/// How loading an image onto a node that lacked it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLoad {
    /// Copied from another node.
    Copied,
    /// The copy failed.
    Failed,
    /// No reachable node had the image.
    Unavailable,
}

impl ImageLoad {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageLoad::Copied => "copied",
            ImageLoad::Failed => "failed",
            ImageLoad::Unavailable => "unavailable",
        }
    }
}

/// The series the service records as things happen. Cheap to clone; clones share the series.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Series>,
}

struct Series {
    registry: Registry,
    actor_duration: Histograms<1>,
    actor_queue_wait: Histogram,
    actor_run: Histograms<1>,
    callback_deliveries: Family<Labels<1>, Counter>,
    engine_errors: Family<Labels<2>, Counter>,
    image_loads: Family<Labels<2>, Counter>,
    http_duration: Histograms<2>,
    http_requests: Family<Labels<3>, Counter>,
    script_waits: Family<Labels<1>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("wharf");
        let series = Series {
            actor_duration: Family::new_with_constructor(actor_histogram as fn() -> Histogram),
            actor_queue_wait: queue_histogram(),
            actor_run: Family::new_with_constructor(actor_histogram as fn() -> Histogram),
            callback_deliveries: Family::default(),
            engine_errors: Family::default(),
            image_loads: Family::default(),
            http_duration: Family::new_with_constructor(http_histogram as fn() -> Histogram),
            http_requests: Family::default(),
            script_waits: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "The running build: its version",
            Info::new([("version", env!("CARGO_PKG_VERSION").to_owned())]),
        );
        registry.register_with_unit(
            "actor_duration",
            "Time from an actor's start (including waiting for a node) to its end, by how it ended",
            Unit::Seconds,
            series.actor_duration.clone(),
        );
        registry.register_with_unit(
            "actor_queue_wait",
            "Time an actor waited for a slot on a node (every attempt's wait, added up)",
            Unit::Seconds,
            series.actor_queue_wait.clone(),
        );
        registry.register_with_unit(
            "actor_run",
            "Time an actor held a node's slot (image, container, copying files), by how it ended",
            Unit::Seconds,
            series.actor_run.clone(),
        );
        registry.register(
            "callback_deliveries",
            "Callback delivery tries by outcome: delivered, failed_attempt (to be retried) or given_up",
            series.callback_deliveries.clone(),
        );
        registry.register(
            "engine_errors",
            "Docker engine calls that failed, by node and operation",
            series.engine_errors.clone(),
        );
        registry.register(
            "image_loads",
            "Images loaded onto a node that lacked them, by node and outcome: copied, failed or unavailable",
            series.image_loads.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (until the response head), by method and route template",
            Unit::Seconds,
            series.http_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status code",
            series.http_requests.clone(),
        );
        registry.register(
            "script_waits",
            "Calls state machine scripts waited on, by how the script went on: live (it waited on \
             its thread) or replayed (it ran again from the top; scripts.max_live was full)",
            series.script_waits.clone(),
        );
        // Series with a fixed set of label values are shown at zero from the start, so that
        // rates and alerts work before the first event.
        for status in ["Succeeded", "Failed", "Cancelled"] {
            let _ = series.actor_duration.get_or_create_owned(&labels([("status", status)]));
            let _ = series.actor_run.get_or_create_owned(&labels([("status", status)]));
        }
        for how in ScriptWait::ALL {
            let _ = series.script_waits.get_or_create_owned(&labels([("how", how.as_str())]));
        }
        for outcome in CallbackOutcome::ALL {
            let _ = series.callback_deliveries.get_or_create_owned(&labels([("outcome", outcome.as_str())]));
        }
        Metrics { shared: Arc::new(Series { registry, ..series }) }
    }

    /// An actor ended with `status` (`Succeeded`, `Failed`, `Cancelled`) after `total`, of
    /// which it spent `queued` waiting for a slot.
    pub fn actor_ended(&self, status: &str, total: Duration, queued: Duration) {
        let status = labels([("status", status)]);
        self.shared.actor_duration.get_or_create(&status).observe(total.as_secs_f64());
        self.shared.actor_queue_wait.observe(queued.as_secs_f64());
        self.shared.actor_run.get_or_create(&status).observe(total.saturating_sub(queued).as_secs_f64());
    }

    pub fn script_wait(&self, how: ScriptWait) {
        self.shared.script_waits.get_or_create(&labels([("how", how.as_str())])).inc();
    }

    pub fn callback_delivery(&self, outcome: CallbackOutcome) {
        self.shared.callback_deliveries.get_or_create(&labels([("outcome", outcome.as_str())])).inc();
    }

    /// A call to `node`'s engine failed while doing `operation` (a fixed phrase of the
    /// Docker layer, such as `creating a container`).
    pub fn engine_error(&self, node: &str, operation: &str) {
        self.shared.engine_errors.get_or_create(&labels([("node", node), ("operation", operation)])).inc();
    }

    pub fn image_load(&self, node: &str, outcome: ImageLoad) {
        self.shared.image_loads.get_or_create(&labels([("node", node), ("outcome", outcome.as_str())])).inc();
    }

    /// A request was answered. `route` must be a route template or a fixed word, never a raw
    /// path: every distinct value is a series kept for the life of the process.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.shared.http_duration.get_or_create(&labels([("method", method), ("route", route)])).observe(seconds);
        let key = labels([("method", method), ("route", route), ("status", &status.to_string())]);
        self.shared.http_requests.get_or_create(&key).inc();
    }

    /// The OpenMetrics text of these series and of `scraped` (series read at scrape time,
    /// registered without a prefix), ended by `# EOF`.
    pub fn encode(&self, scraped: &Registry) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut text, scraped);
        let _ = encode_registry(&mut text, &self.shared.registry);
        let _ = encode_eof(&mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn service_series_start_at_zero_and_count() {
        let metrics = Metrics::new();
        let text = metrics.encode(&Registry::default());
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("wharf_build_info{version=\"") && text.contains("\"} 1\n"), "{text}");
        assert_eq!(line(&text, "wharf_actor_duration_seconds_count{status=\"Failed\"}"), Some("0"), "{text}");
        assert_eq!(line(&text, "wharf_callback_deliveries_total{outcome=\"given_up\"}"), Some("0"));

        metrics.actor_ended("Failed", Duration::from_millis(3500), Duration::from_millis(500));
        metrics.engine_error("box", "creating a container");
        metrics.image_load("box", ImageLoad::Copied);
        metrics.http_request("GET", "/api/v1/Actor/{name}", 404, 0.002);
        let text = metrics.encode(&Registry::default());
        assert_eq!(line(&text, "wharf_actor_run_seconds_sum{status=\"Failed\"}"), Some("3.0"), "{text}");
        assert_eq!(line(&text, "wharf_actor_queue_wait_seconds_sum"), Some("0.5"), "{text}");
        assert_eq!(line(&text, "wharf_actor_duration_seconds_bucket{le=\"2.5\",status=\"Failed\"}"), Some("0"));
        assert_eq!(line(&text, "wharf_actor_duration_seconds_bucket{le=\"5.0\",status=\"Failed\"}"), Some("1"));
        assert_eq!(
            line(&text, "wharf_engine_errors_total{node=\"box\",operation=\"creating a container\"}"),
            Some("1"),
            "{text}"
        );
        assert_eq!(line(&text, "wharf_image_loads_total{node=\"box\",outcome=\"copied\"}"), Some("1"));
        assert_eq!(
            line(&text, "wharf_http_requests_total{method=\"GET\",route=\"/api/v1/Actor/{name}\",status=\"404\"}"),
            Some("1")
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.engine_error("a\"b\\c\nd", "x");
        let text = metrics.encode(&Registry::default());
        assert!(text.contains("node=\"a\\\"b\\\\c\\nd\""), "{text}");
    }
}
