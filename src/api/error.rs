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
    /// The methods of an `Allow` header (MethodNotAllowed), as bits of
    /// [`ALLOWABLE`]: a byte keeps the error small (it is in every
    /// handler's `Result`).
    pub allow: u8,
}

/// The methods an `Allow` header can name.
pub const ALLOWABLE: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

impl ApiError {
    pub fn new(key: ErrorKey, message: impl Into<String>) -> ApiError {
        ApiError {
            key,
            message: message.into(),
            retry_after_secs: None,
            fields: Fields::new(),
            allow: 0,
        }
    }

    /// `Allow: <methods>` on the answer (RFC 9110 §15.5.6: a 405 says what
    /// the path answers).
    pub fn allow<'m>(mut self, methods: impl IntoIterator<Item = &'m str>) -> ApiError {
        for m in methods {
            if let Some(i) = ALLOWABLE.iter().position(|a| *a == m) {
                self.allow |= 1 << i;
            }
        }
        self
    }

    /// The `Allow` header's value, if the error has one.
    pub fn allow_header(&self) -> Option<String> {
        (self.allow != 0).then(|| {
            ALLOWABLE
                .iter()
                .enumerate()
                .filter(|(i, _)| self.allow & (1 << i) != 0)
                .map(|(_, m)| *m)
                .collect::<Vec<_>>()
                .join(", ")
        })
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
            EngineError::StoreCorrupt(_) => {
                tracing::error!(error = %err, "corrupt store record");
                // A 5xx: a till retries it, and that is safe — the refusal
                // came before any write on the record, and the writes before
                // it (an index claim) are the kind a retry completes.
                ApiError::new(
                    ErrorKey::InternalError,
                    "internal error: a stored record is not in the form this server writes (see the server log); nothing was written on it, and retrying the request is safe",
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
