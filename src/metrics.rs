//! Metrics in the Prometheus text exposition format (version 0.0.4), without a metrics crate:
//! counters and gauges on atomics, histograms with fixed buckets behind a `std` mutex, grouped
//! in families by label values. `Metrics` is the service's cheap-to-clone handle on the series
//! it records as things happen; series read at scrape time (instances, nodes) are built by the
//! `/metrics` route in families of its own and written with the same encoder.
//! *Invariant:* knows nothing of HTTP, the database or Docker.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the actor duration buckets: from a trivial actor to a long build.
pub const ACTOR_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Upper bounds (seconds) of the HTTP request duration buckets.
pub const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that is set to what it is now.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Observations counted in fixed buckets, with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One lock for all fields, so that a scrape never sees a count without its bucket.
    state: Mutex<HistogramState>,
}

#[derive(Debug, Clone, PartialEq)]
struct HistogramState {
    /// Observations per bucket (not cumulative); the last one is above every bound.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// A histogram over `bounds`, which must ascend.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bucket bounds ascend");
        let state = HistogramState { buckets: vec![0; bounds.len() + 1], sum: 0.0, count: 0 };
        Histogram { bounds, state: Mutex::new(state) }
    }

    pub fn observe(&self, value: f64) {
        // A value is in the first bucket whose upper bound it does not exceed (`le`).
        let index = self.bounds.partition_point(|bound| *bound < value);
        let mut state = self.lock();
        state.buckets[index] += 1;
        state.sum += value;
        state.count += 1;
    }

    fn lock(&self) -> MutexGuard<'_, HistogramState> {
        // Plain numbers: a panic elsewhere cannot leave them half-written in a way that matters.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a family holds per set of label values, and how it is written.
pub trait Metric: Send + Sync {
    const TYPE: &'static str;
    fn make(bounds: &'static [f64]) -> Self;
    /// Writes this metric's samples; `labels` is the already-escaped `name="value"` list.
    fn encode(&self, name: &str, labels: &str, out: &mut String);
}

impl Metric for Counter {
    const TYPE: &'static str = "counter";
    fn make(_: &'static [f64]) -> Self {
        Counter::default()
    }
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, "", labels, "", self.get() as f64);
    }
}

impl Metric for Gauge {
    const TYPE: &'static str = "gauge";
    fn make(_: &'static [f64]) -> Self {
        Gauge::default()
    }
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, "", labels, "", self.get());
    }
}

impl Metric for Histogram {
    const TYPE: &'static str = "histogram";
    fn make(bounds: &'static [f64]) -> Self {
        Histogram::new(bounds)
    }
    fn encode(&self, name: &str, labels: &str, out: &mut String) {
        let state = self.lock().clone();
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&state.buckets) {
            cumulative += count;
            sample(out, name, "_bucket", labels, &format!("{sep}le=\"{}\"", number(*bound)), cumulative as f64);
        }
        sample(out, name, "_bucket", labels, &format!("{sep}le=\"+Inf\""), state.count as f64);
        sample(out, name, "_sum", labels, "", state.sum);
        sample(out, name, "_count", labels, "", state.count as f64);
    }
}

/// One metric name: its help, its label names, and one metric per set of label values.
pub struct Family<M, const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    bounds: &'static [f64],
    children: Mutex<BTreeMap<[String; N], Arc<M>>>,
}

impl<M: Metric, const N: usize> Family<M, N> {
    pub fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self::with_buckets(name, help, labels, &[])
    }

    /// A family of histograms over `bounds`.
    pub fn with_buckets(
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
        bounds: &'static [f64],
    ) -> Self {
        Family { name, help, labels, bounds, children: Mutex::new(BTreeMap::new()) }
    }

    /// The metric for these label values, created at zero the first time.
    pub fn with(&self, values: [&str; N]) -> Arc<M> {
        let key = values.map(str::to_owned);
        let mut children = self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        children.entry(key).or_insert_with(|| Arc::new(M::make(self.bounds))).clone()
    }

    /// Writes `# HELP`, `# TYPE` and every sample, ordered by label values.
    pub fn encode(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::TYPE);
        let children: Vec<([String; N], Arc<M>)> = {
            let children = self.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            children.iter().map(|(key, metric)| (key.clone(), metric.clone())).collect()
        };
        for (values, metric) in children {
            let labels: Vec<String> = self
                .labels
                .iter()
                .zip(&values)
                .map(|(label, value)| format!("{label}=\"{}\"", escape_label_value(value)))
                .collect();
            metric.encode(self.name, &labels.join(","), out);
        }
    }
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

/// The series the service records as things happen. Cheap to clone; clones share the series.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Registry>,
}

struct Registry {
    actor_duration: Family<Histogram, 1>,
    callback_deliveries: Family<Counter, 1>,
    http_duration: Family<Histogram, 2>,
    http_requests: Family<Counter, 3>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry {
            actor_duration: Family::with_buckets(
                "wharf_actor_duration_seconds",
                "Time from an actor's start (including waiting for a node) to its end, by how it ended.",
                ["status"],
                ACTOR_BUCKETS,
            ),
            callback_deliveries: Family::new(
                "wharf_callback_deliveries_total",
                "Callback delivery tries by outcome: delivered, failed_attempt (to be retried) or given_up.",
                ["outcome"],
            ),
            http_duration: Family::with_buckets(
                "wharf_http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head), by method and route template.",
                ["method", "route"],
                HTTP_BUCKETS,
            ),
            http_requests: Family::new(
                "wharf_http_requests_total",
                "HTTP requests answered, by method, route template and status code.",
                ["method", "route", "status"],
            ),
        };
        // Series with a fixed set of label values are shown at zero from the start, so that
        // rates and alerts work before the first event.
        for status in ["Succeeded", "Failed", "Cancelled"] {
            registry.actor_duration.with([status]);
        }
        for outcome in CallbackOutcome::ALL {
            registry.callback_deliveries.with([outcome.as_str()]);
        }
        Metrics { shared: Arc::new(registry) }
    }

    /// An actor ended with `status` (`Succeeded`, `Failed`, `Cancelled`) after `seconds`.
    pub fn actor_ended(&self, status: &str, seconds: f64) {
        self.shared.actor_duration.with([status]).observe(seconds);
    }

    pub fn callback_delivery(&self, outcome: CallbackOutcome) {
        self.shared.callback_deliveries.with([outcome.as_str()]).inc();
    }

    /// A request was answered. `route` must be a route template or a fixed word, never a raw
    /// path: every distinct value is a series kept for the life of the process.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.shared.http_duration.with([method, route]).observe(seconds);
        self.shared.http_requests.with([method, route, &status.to_string()]).inc();
    }

    /// Writes every series this handle records.
    pub fn encode(&self, out: &mut String) {
        let registry = &self.shared;
        registry.actor_duration.encode(out);
        registry.callback_deliveries.encode(out);
        registry.http_duration.encode(out);
        registry.http_requests.encode(out);
    }
}

/// Writes one sample line: `name{labels} value`.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &str, extra: &str, value: f64) {
    if labels.is_empty() && extra.is_empty() {
        let _ = writeln!(out, "{name}{suffix} {}", number(value));
    } else {
        let _ = writeln!(out, "{name}{suffix}{{{labels}{extra}}} {}", number(value));
    }
}

/// A number as the format spells it: `+Inf`, `-Inf`, `NaN`, or Rust's shortest exact decimal.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Help texts escape backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<M: Metric, const N: usize>(family: &Family<M, N>) -> String {
        let mut out = String::new();
        family.encode(&mut out);
        out
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let family: Family<Gauge, 2> = Family::new("wharf_test", "A help with \\ and\na new line.", ["node", "other"]);
        family.with(["a\"b\\c\nd", "plain"]).set(1.0);
        assert_eq!(
            encoded(&family),
            "# HELP wharf_test A help with \\\\ and\\na new line.\n\
             # TYPE wharf_test gauge\n\
             wharf_test{node=\"a\\\"b\\\\c\\nd\",other=\"plain\"} 1\n"
        );
    }

    #[test]
    fn counters_and_gauges() {
        let counter: Family<Counter, 1> = Family::new("wharf_things_total", "Things.", ["kind"]);
        counter.with(["b"]).inc();
        counter.with(["a"]).inc();
        counter.with(["b"]).inc();
        assert_eq!(
            encoded(&counter),
            "# HELP wharf_things_total Things.\n# TYPE wharf_things_total counter\n\
             wharf_things_total{kind=\"a\"} 1\nwharf_things_total{kind=\"b\"} 2\n"
        );

        let gauge: Family<Gauge, 0> = Family::new("wharf_level", "Level.", []);
        assert_eq!(encoded(&gauge), "# HELP wharf_level Level.\n# TYPE wharf_level gauge\n", "no sample until set");
        gauge.with([]).set(0.5);
        gauge.with([]).set(-3.0);
        assert_eq!(encoded(&gauge), "# HELP wharf_level Level.\n# TYPE wharf_level gauge\nwharf_level -3\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let family: Family<Histogram, 1> =
            Family::with_buckets("wharf_wait_seconds", "Waits.", ["status"], &[0.5, 1.0, 2.5]);
        let histogram = family.with(["ok"]);
        // On a bound counts in that bucket (`le`); past the last bound only in +Inf.
        for value in [0.25, 0.5, 0.75, 1.0, 2.0, 7.0] {
            histogram.observe(value);
        }
        assert_eq!(
            encoded(&family),
            "# HELP wharf_wait_seconds Waits.\n\
             # TYPE wharf_wait_seconds histogram\n\
             wharf_wait_seconds_bucket{status=\"ok\",le=\"0.5\"} 2\n\
             wharf_wait_seconds_bucket{status=\"ok\",le=\"1\"} 4\n\
             wharf_wait_seconds_bucket{status=\"ok\",le=\"2.5\"} 5\n\
             wharf_wait_seconds_bucket{status=\"ok\",le=\"+Inf\"} 6\n\
             wharf_wait_seconds_sum{status=\"ok\"} 11.5\n\
             wharf_wait_seconds_count{status=\"ok\"} 6\n"
        );

        let bare: Family<Histogram, 0> = Family::with_buckets("wharf_bare", "Bare.", [], &[1.0]);
        bare.with([]).observe(3.0);
        assert_eq!(
            encoded(&bare),
            "# HELP wharf_bare Bare.\n# TYPE wharf_bare histogram\n\
             wharf_bare_bucket{le=\"1\"} 0\nwharf_bare_bucket{le=\"+Inf\"} 1\nwharf_bare_sum 3\nwharf_bare_count 1\n"
        );
    }

    #[test]
    fn numbers() {
        let check = |value: f64, expected: &str| assert_eq!(number(value), expected, "{value}");
        check(0.0, "0");
        check(42.0, "42");
        check(0.001, "0.001");
        check(1e21, "1000000000000000000000");
        check(f64::INFINITY, "+Inf");
        check(f64::NEG_INFINITY, "-Inf");
        check(f64::NAN, "NaN");
    }

    #[test]
    fn service_series_start_at_zero_and_count() {
        let metrics = Metrics::new();
        let clone = metrics.clone();
        clone.callback_delivery(CallbackOutcome::Delivered);
        clone.actor_ended("Succeeded", 0.3);
        clone.http_request("GET", "/api/v1/Actor/{name}", 404, 0.002);
        let mut out = String::new();
        metrics.encode(&mut out);
        for line in [
            "wharf_callback_deliveries_total{outcome=\"delivered\"} 1",
            "wharf_callback_deliveries_total{outcome=\"failed_attempt\"} 0",
            "wharf_callback_deliveries_total{outcome=\"given_up\"} 0",
            "wharf_actor_duration_seconds_bucket{status=\"Succeeded\",le=\"0.25\"} 0",
            "wharf_actor_duration_seconds_bucket{status=\"Succeeded\",le=\"0.5\"} 1",
            "wharf_actor_duration_seconds_count{status=\"Failed\"} 0",
            "wharf_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/Actor/{name}\",le=\"0.0025\"} 1",
            "wharf_http_requests_total{method=\"GET\",route=\"/api/v1/Actor/{name}\",status=\"404\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "`{line}` in:\n{out}");
        }
        for name in [
            "wharf_actor_duration_seconds",
            "wharf_callback_deliveries_total",
            "wharf_http_request_duration_seconds",
            "wharf_http_requests_total",
        ] {
            assert_eq!(out.matches(&format!("# TYPE {name} ")).count(), 1, "{name} typed once");
            assert_eq!(out.matches(&format!("# HELP {name} ")).count(), 1, "{name} described once");
        }
    }
}
