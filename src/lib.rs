//! mcp-operator: keeps MCP server pools serving through dependency failures.
pub mod remediation;
