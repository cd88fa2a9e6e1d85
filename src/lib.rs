//! Loyalty-card processing engine: cash registers call it over REST to read
//! balances and move cards through their lifecycle.
//!
//! Layers (dependencies point down): `api` → `engine` → `store` → `domain`.

pub mod api;
pub mod archive;
pub mod bulk;
pub mod config;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod json_text;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod net;
pub mod reload;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use startup::{Application, RunningApp};
