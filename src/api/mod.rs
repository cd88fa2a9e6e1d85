//! The HTTP layer: one dispatcher routes every request (case-insensitively),
//! authenticates, checks the role, reads parameters and answers in the
//! envelope of docs/api.md §1.1 — for errors too, including 401/404/413/500.

mod admin;
pub mod auth;
mod auth_throttle;
mod card;
pub mod catalogue;
mod contact;
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
pub mod till_token;
pub mod transport;
pub mod users;
pub mod users_table;
mod verifier;
/// The JSON shapes of the answers; public for the benches (`benches/api.rs`).
pub mod views;

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

pub use dispatch::dispatch;

use crate::config::Settings;
use crate::domain::{Actor, CardNumberFormat};
use crate::engine::{Engine, EngineError};
use auth::Authenticator;
use error::ApiError;
use params::Params;
use router::Router;

/// Shared by every worker.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<Authenticator>,
    pub router: Router,
    pub card_format: CardNumberFormat,
    pub settings: Settings,
    pub metrics: PrometheusHandle,
    /// The OpenAPI document of these settings, as served.
    pub openapi: String,
}

/// What a handler gets: the state, who calls, and the request's parameters.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub actor: Actor,
    pub params: Params,
    pub captures: Vec<String>,
}

impl Ctx<'_> {
    pub fn engine_error(&self, e: EngineError) -> ApiError {
        ApiError::from_engine(e, self.state.settings.engine.overload_retry_after_secs)
    }
}
