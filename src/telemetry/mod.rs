//! Logs, metrics, health and the operator's own HTTP endpoints.
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
