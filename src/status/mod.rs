//! Pure status logic: observations -> conditions and phase.
pub mod conditions;
pub mod phase;
