use crate::domain::RuleError;
use crate::store::StoreError;

/// Why a command failed. Store failures are told in the engine's own terms
/// (whether a write may have landed, and the detail for the log), so that
/// the API needs no store type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// A business rule or lookup refused the command.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The store could not be reached or did not answer in time; nothing
    /// was written. The text is for the log, not for the caller.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// A write was sent but its answer never came: it may have landed.
    #[error("store outcome unknown: {0}")]
    StoreOutcomeUnknown(String),
    /// The shard's queue is full: answer 503 with Retry-After at once.
    #[error("the engine is overloaded")]
    Overloaded,
    /// Conditional writes kept losing to concurrent writers; the caller may retry.
    #[error("too much contention on {0}")]
    Contention(String),
    /// A stored record is not in the form this server writes (a foreign
    /// value, a key of another type): refused before anything was written
    /// on it, by a read or by a script's checks (docs/redis.md, "Scripts").
    /// The text is for the log (it names the key), not for the caller.
    #[error("{0}")]
    StoreCorrupt(String),
    /// A broken internal expectation: a bug, reported as InternalError.
    #[error("internal error: {0}")]
    Internal(String),
    /// The shard actor is gone (shutdown in progress).
    #[error("the engine is shutting down")]
    Stopped,
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        match e {
            StoreError::Unavailable(reason) => EngineError::StoreUnavailable(reason),
            StoreError::OutcomeUnknown(reason) => EngineError::StoreOutcomeUnknown(reason),
            // Undecodable data is a bug or foreign data, not a transient fault.
            corrupt @ StoreError::Corrupt { .. } => EngineError::StoreCorrupt(corrupt.to_string()),
        }
    }
}
