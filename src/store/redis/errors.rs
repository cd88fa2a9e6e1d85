//! Maps redis-rs errors onto the store's three failure kinds. What matters
//! is honesty about writes: a write whose reply never came may have been
//! applied, and the caller must be told so (`OutcomeUnknown`), while a write
//! that provably never left (no connection) is `Unavailable`.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreError;

/// Was the request certainly not executed by the server?
fn not_executed(e: &RedisError) -> bool {
    if e.is_connection_refusal() {
        return true;
    }
    // The server answered with an error before running anything: not
    // reachable as a master for this slot, loading, or (our scripts carry a
    // shebang, so OOM is refused before they start) out of memory.
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::ClusterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::NoScript
                | ServerErrorKind::CrossSlot
        ) | ErrorKind::ClusterConnectionNotFound
            | ErrorKind::AuthenticationFailed
    ) || e.code() == Some("OOM")
}

pub fn read(what: &str, e: RedisError) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// A write that failed. `resends`: the client may have sent the command
/// more than once (the cluster client retries after a connection reset or a
/// redirection), so an error proves nothing about an earlier attempt — the
/// first send may have run before the connection died, and the refusal came
/// to the resend. Only a client that never resends can call a refusal "not
/// run": a claim given back on that word would be one a landed write relies on.
pub fn write(what: &str, e: RedisError, resends: bool) -> StoreError {
    if !resends && not_executed(&e) {
        StoreError::Unavailable(format!("{what}: {e}"))
    } else {
        StoreError::OutcomeUnknown(format!("{what}: {e}"))
    }
}

pub fn read_timeout(what: &str, ms: u64) -> StoreError {
    StoreError::Unavailable(format!("{what}: no answer within {ms} ms"))
}

pub fn write_timeout(what: &str, ms: u64) -> StoreError {
    StoreError::OutcomeUnknown(format!(
        "{what}: no answer within {ms} ms; the write may or may not have been applied"
    ))
}

pub fn corrupt(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RedisError {
        RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn a_refusal_is_not_run_only_for_a_client_that_never_resends() {
        assert!(refused().is_connection_refusal());
        assert!(matches!(
            write("w", refused(), false),
            StoreError::Unavailable(_)
        ));
        // The cluster client may have sent it before, on the connection
        // that was reset: the write may have landed.
        assert!(matches!(
            write("w", refused(), true),
            StoreError::OutcomeUnknown(_)
        ));
        let try_again =
            || RedisError::from((ErrorKind::Server(ServerErrorKind::TryAgain), "TRYAGAIN"));
        assert!(matches!(
            write("w", try_again(), false),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            write("w", try_again(), true),
            StoreError::OutcomeUnknown(_)
        ));
    }
}
