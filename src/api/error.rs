//! The API's error: a Key, its message, and what the response needs besides.

use serde_json::Value;

use super::views::Fields;
use crate::domain::{ErrorKey, RuleError};
use crate::engine::EngineError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub key: ErrorKey,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503 Overloaded).
    pub retry_after_secs: Option<u64>,
    /// Method-specific fields an error answer carries after the envelope
    /// (a refused calculate still tells `MaxBonusToPay`).
    pub fields: Fields,
    /// The methods of an `Allow` header (MethodNotAllowed).
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(key: ErrorKey, message: impl Into<String>) -> ApiError {
        ApiError {
            key,
            message: message.into(),
            retry_after_secs: None,
            fields: Fields::new(),
            allow: None,
        }
    }

    /// `Allow: <methods>` on the answer (RFC 9110 §15.5.6: a 405 says what
    /// the path answers).
    pub fn allow(mut self, methods: String) -> ApiError {
        self.allow = Some(methods);
        self
    }

    pub fn with_field(mut self, name: &str, value: Value) -> ApiError {
        self.fields.insert(name.to_owned(), value);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn from_engine(err: EngineError, overload_retry_after_secs: u64) -> ApiError {
        match err.clone() {
            EngineError::Rule(rule) => rule.into(),
            // The store's own words (addresses, perhaps credentials in a URL)
            // go to the log, not to the caller.
            EngineError::StoreUnavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                ApiError::new(
                    ErrorKey::StoreUnavailable,
                    "the store is unavailable; retry later",
                )
            }
            EngineError::StoreOutcomeUnknown(reason) => {
                tracing::warn!(%reason, "store outcome unknown");
                ApiError::new(
                    ErrorKey::StoreUnavailable,
                    "the store did not confirm the write: it may or may not have been applied, and retrying the same request is safe",
                )
            }
            EngineError::Internal(_) => {
                // The detail is for operators, not for the caller.
                tracing::error!(error = %err, "internal error");
                ApiError::new(ErrorKey::InternalError, "internal error")
            }
            EngineError::Overloaded => ApiError::new(
                ErrorKey::Overloaded,
                "the engine is overloaded; retry later",
            )
            .retry_after(overload_retry_after_secs),
            EngineError::Contention(what) => ApiError::new(
                ErrorKey::Overloaded,
                format!("too many concurrent changes to {what}; retry later"),
            )
            .retry_after(overload_retry_after_secs),
            EngineError::Stopped => {
                ApiError::new(ErrorKey::Overloaded, "the server is shutting down")
                    .retry_after(overload_retry_after_secs)
            }
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> ApiError {
        ApiError::new(e.key, e.message)
    }
}
