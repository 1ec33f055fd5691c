//! mcp-operator: keeps MCP server pools serving through dependency failures.
pub mod api;
pub mod apiclient;
pub mod builders;
pub mod controller;
pub mod leader;
pub mod mcpcheck;
pub mod rbac;
pub mod redact;
pub mod remediation;
pub mod status;
pub mod telemetry;
