//! tracing setup: JSON by default, level from flag/env.
use tracing_subscriber::{fmt, EnvFilter};

/// rmcp logs every client session at INFO (four lines per MCP check); the
/// prober's checks would drown the operator's own lines. A directive that
/// names rmcp wins.
const QUIET: &str = "rmcp=warn";

pub fn init(level: &str, format: &str) -> anyhow::Result<()> {
    let directives = if level.contains("rmcp") {
        level.to_string()
    } else {
        format!("{level},{QUIET}")
    };
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| anyhow::anyhow!("invalid log level {level:?}: {e}"))?;
    let builder = fmt().with_env_filter(filter).with_target(true);
    let res = if format == "text" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
    res.map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))
}
