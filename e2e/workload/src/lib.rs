//! mcp-workload: a Postgres-backed MCP server that exercises the failures the
//! mcp-operator handles, and a load/verify client that measures them.

pub mod backoff;
pub mod client;
pub mod config;
pub mod eras;
pub mod health;
pub mod hosts;
pub mod metrics;
pub mod openloop;
pub mod pool;
pub mod redact;
pub mod report;
pub mod server;
pub mod tools;
pub mod wedge;
