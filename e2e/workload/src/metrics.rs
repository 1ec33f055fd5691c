//! Prometheus metrics (text exposition via prometheus-client).
//!
//! No label carries a URL or any other user-provided string except the tool
//! name (from a fixed set) and the error kind (from a fixed set).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels for per-tool call counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
}

/// Labels for per-tool error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolErrorLabels {
    pub tool: String,
    pub kind: String,
}

/// All metrics of the workload server.
pub struct Metrics {
    registry: Registry,
    pub pool_size: Gauge,
    pub pool_idle: Gauge,
    pub pool_active: Gauge,
    pub pool_waiting: Gauge,
    pub pool_max: Gauge,
    pub db_up: Gauge,
    pub acquire_seconds: Histogram,
    pub connection_failures: Counter,
    pub reconnects: Counter,
    pub recovery_seconds: Histogram,
    pub tool_calls: Family<ToolLabels, Counter>,
    pub tool_errors: Family<ToolErrorLabels, Counter>,
    pub tool_seconds: Family<ToolLabels, Histogram>,
    pub inflight_calls: Gauge,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
    .into_iter()
}

fn recovery_buckets() -> impl Iterator<Item = f64> {
    [
        0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let pool_size = Gauge::default();
        let pool_idle = Gauge::default();
        let pool_active = Gauge::default();
        let pool_waiting = Gauge::default();
        let pool_max = Gauge::default();
        let db_up = Gauge::default();
        let acquire_seconds = Histogram::new(latency_buckets());
        let connection_failures = Counter::default();
        let reconnects = Counter::default();
        let recovery_seconds = Histogram::new(recovery_buckets());
        let tool_calls = Family::<ToolLabels, Counter>::default();
        let tool_errors = Family::<ToolErrorLabels, Counter>::default();
        let tool_seconds = Family::<ToolLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        let inflight_calls = Gauge::default();

        registry.register(
            "db_pool_size",
            "Connections currently open in the pool",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle",
            "Idle connections in the pool",
            pool_idle.clone(),
        );
        registry.register(
            "db_pool_active",
            "Connections checked out of the pool",
            pool_active.clone(),
        );
        registry.register(
            "db_pool_waiting",
            "Callers waiting for a connection",
            pool_waiting.clone(),
        );
        registry.register(
            "db_pool_max_size",
            "Configured maximum pool size",
            pool_max.clone(),
        );
        registry.register(
            "db_up",
            "1 when the database is considered reachable",
            db_up.clone(),
        );
        registry.register(
            "db_pool_acquire_seconds",
            "Time to obtain a connection from the pool",
            acquire_seconds.clone(),
        );
        registry.register(
            "db_connection_failures",
            "Database connection losses and failed connection attempts",
            connection_failures.clone(),
        );
        registry.register(
            "db_reconnects",
            "Successful recoveries after a database loss",
            reconnects.clone(),
        );
        registry.register(
            "db_recovery_seconds",
            "Time from detecting a database loss to serving again",
            recovery_seconds.clone(),
        );
        registry.register(
            "mcp_tool_calls",
            "MCP tool calls by tool",
            tool_calls.clone(),
        );
        registry.register(
            "mcp_tool_errors",
            "MCP tool errors by tool and kind",
            tool_errors.clone(),
        );
        registry.register(
            "mcp_tool_duration_seconds",
            "MCP tool call duration",
            tool_seconds.clone(),
        );
        registry.register(
            "mcp_inflight_calls",
            "MCP tool calls in progress",
            inflight_calls.clone(),
        );
        Self {
            registry,
            pool_size,
            pool_idle,
            pool_active,
            pool_waiting,
            pool_max,
            db_up,
            acquire_seconds,
            connection_failures,
            reconnects,
            recovery_seconds,
            tool_calls,
            tool_errors,
            tool_seconds,
            inflight_calls,
        }
    }

    /// Count a call of `tool`.
    pub fn call(&self, tool: &str) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
            })
            .inc();
    }

    /// Count an error of `kind` for `tool`.
    pub fn error(&self, tool: &str, kind: &str) {
        self.tool_errors
            .get_or_create(&ToolErrorLabels {
                tool: tool.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Observe a call duration.
    pub fn duration(&self, tool: &str, secs: f64) {
        self.tool_seconds
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
            })
            .observe(secs);
    }

    /// Render the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
            out.push_str("# metrics encoding failed\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_required_names() {
        let m = Metrics::new();
        m.call("put_note");
        m.error("put_note", "pool_exhausted");
        m.connection_failures.inc();
        m.reconnects.inc();
        m.acquire_seconds.observe(0.002);
        m.recovery_seconds.observe(0.7);
        let text = m.encode();
        for name in [
            "db_pool_size",
            "db_pool_idle",
            "db_pool_waiting",
            "db_pool_acquire_seconds_bucket",
            "db_connection_failures_total 1",
            "db_reconnects_total 1",
            "db_recovery_seconds_bucket",
            "mcp_tool_calls_total{tool=\"put_note\"} 1",
            "mcp_tool_errors_total{tool=\"put_note\",kind=\"pool_exhausted\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
