//! Log output for operators: human-readable text or JSON lines, filtered by `log.filter`
//! (or `RUST_LOG` when set).

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber; a second call (as in tests) keeps the first.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if config.format == "json" {
        builder.json().with_current_span(true).with_span_list(true).try_init()
    } else {
        builder.try_init()
    };
}
