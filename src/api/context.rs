//! What every handler sees: the shared state and the request's context.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::auth::Authenticator;
use super::error::ApiError;
use super::params::Params;
use crate::config::Settings;
use crate::domain::{Actor, CardNumberFormat};
use crate::engine::{Engine, EngineError};

/// Shared by every worker.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Arc<Authenticator>,
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
