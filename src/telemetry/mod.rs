//! Logs, metrics and the operator's own HTTP endpoints.
pub mod http;
pub mod logging;
pub mod metrics;
