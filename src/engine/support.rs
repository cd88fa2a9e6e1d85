//! What the command families share, as plain functions: the retry bound,
//! the refusals more than one family answers, replays of stored outcomes,
//! and history entries of bonus movements. Imports no other engine module
//! but the error and the stored-outcome form.

use time::OffsetDateTime;

use super::error::EngineError;
use super::kept::Stored;
use crate::domain::{
    Actor, BonusMovement, Card, CardNumber, ErrorKey, HistoryEntry, MobileNumber, Operation,
    RuleError,
};

/// How many times a command re-reads and retries after losing a
/// conditional write to a concurrent writer before giving up.
pub(crate) const MAX_ATTEMPTS: usize = 8;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn not_found_card(number: &CardNumber) -> EngineError {
    RuleError::new(
        ErrorKey::CannotFindCardNumber,
        format!("no card with the number {number}"),
    )
    .into()
}

pub(crate) fn cannot_find_mobile(mobile: &MobileNumber) -> EngineError {
    RuleError::new(
        ErrorKey::CannotFindMobile,
        format!("no contact with the mobile number {mobile}"),
    )
    .into()
}

pub(crate) fn conflict(what: &str) -> EngineError {
    RuleError::new(
        ErrorKey::IdempotencyConflict,
        format!("{what} was already used with a different request"),
    )
    .into()
}

pub(crate) fn replay<T>(
    stored: Stored<T>,
    fingerprint: &str,
    what: &str,
) -> Result<T, EngineError> {
    if stored.fingerprint == fingerprint {
        Ok(stored.outcome)
    } else {
        Err(conflict(what))
    }
}

pub(crate) fn bonus_entry(
    at: OffsetDateTime,
    card: &Card,
    actor: &Actor,
    operation: Operation,
    movement: BonusMovement,
) -> HistoryEntry {
    HistoryEntry {
        at,
        login: actor.login.clone(),
        role: actor.role,
        operation,
        from: card.status,
        to: card.status,
        reason_code: None,
        reason_name: None,
        detail: None,
        bonus: Some(movement),
    }
}
