//! The HTTP layer: one dispatcher routes every request (case-insensitively),
//! authenticates, checks the role, reads parameters and answers in the
//! envelope of docs/api.md §1.1 — for errors too, including 401/404/413/500.

mod admin;
mod answer;
pub mod auth;
mod auth_throttle;
mod body;
mod card;
pub mod catalogue;
mod contact;
pub mod context;
mod dispatch;
pub mod error;
mod log_limit;
mod log_redact;
pub mod openapi;
mod ops;
pub mod params;
mod purchase;
pub mod read_deadline;
pub mod router;
pub mod routes;
pub mod till_token;
pub mod transport;
pub mod users;
pub mod users_table;
mod verifier;
/// The JSON shapes of the answers; public for the benches (`benches/api.rs`).
pub mod views;

pub use context::{AppState, Ctx};
pub use dispatch::dispatch;
