pub mod fake_api;
pub mod real_api;
