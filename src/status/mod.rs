//! Pure status logic: observations -> conditions and phase.
pub mod compute;
pub mod conditions;
pub mod mcp;
pub mod phase;
