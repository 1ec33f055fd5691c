//! tracing setup: JSON by default, level from flag/env.
use tracing_subscriber::{fmt, EnvFilter};

pub fn init(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid log level {level:?}: {e}"))?;
    let builder = fmt().with_env_filter(filter).with_target(true);
    let res = if format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    res.map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))
}
