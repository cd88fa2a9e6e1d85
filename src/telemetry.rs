//! Log output: a tracing subscriber configured from `[log]`; `RUST_LOG`
//! overrides the level.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests start many servers) is not an error.
    let _ = if settings.format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// For commands whose standard output is data (`loyalty export`): the log
/// goes to standard error.
pub fn init_to_stderr(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = if settings.format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
