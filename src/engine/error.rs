use crate::domain::RuleError;
use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// A business rule or lookup refused the command.
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shard's queue is full: answer 503 with Retry-After at once.
    #[error("the engine is overloaded")]
    Overloaded,
    /// Conditional writes kept losing to concurrent writers; the caller may retry.
    #[error("too much contention on {0}")]
    Contention(String),
    /// A broken internal expectation: a bug, reported as InternalError.
    #[error("internal error: {0}")]
    Internal(String),
    /// The shard actor is gone (shutdown in progress).
    #[error("the engine is shutting down")]
    Stopped,
}
