//! Index claims are owned by one *attempt*, not just by a record: the owner
//! string is `<record>#<token>`. Two attempts for the same record (say the
//! same card bound to the same contact through two server instances) then
//! cannot mistake each other's claim for their own, so one attempt never
//! releases a claim that the other's completed write relies on.
//!
//! The token starts with the server instance's id. A shard actor runs the
//! commands of one record one after another, so a claim on a record made by
//! this very instance and still found unfinished belongs to an attempt that
//! has already ended (it failed, say, while the store was away): it can be
//! taken over at once instead of waiting out its lease.

use std::time::Duration;

/// A fresh owner string for one attempt on `record` by `instance`.
pub(crate) fn new_owner(instance: u32, record: &str) -> String {
    format!("{record}#{instance:08x}{:08x}", rand::random::<u32>())
}

/// Was the claim `owner` made by `instance`?
pub(crate) fn made_by(owner: &str, instance: u32) -> bool {
    owner
        .split('#')
        .nth(1)
        .and_then(|token| token.get(..8))
        .is_some_and(|id| id == format!("{instance:08x}"))
}

/// An owner string that also names the record this attempt takes over
/// from (a card blocked for replacement): if the attempt dies, whoever
/// takes its stale claim over inherits the replacement to complete.
pub(crate) fn new_owner_replacing(instance: u32, record: &str, replaces: Option<&str>) -> String {
    match replaces {
        Some(old) => format!("{}#{old}", new_owner(instance, record)),
        None => new_owner(instance, record),
    }
}

/// The record an owner string names.
pub(crate) fn record_of(owner: &str) -> &str {
    owner.split_once('#').map_or(owner, |(record, _)| record)
}

/// The record an owner string says it replaces, if any.
pub(crate) fn replaced_of(owner: &str) -> Option<&str> {
    owner.splitn(3, '#').nth(2).filter(|s| !s.is_empty())
}

/// How long to wait before looking again at a claim that another attempt
/// for the same record holds and has not completed yet.
pub(crate) const IN_PROGRESS_BACKOFF: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_name_their_record_and_differ_per_attempt() {
        let a = new_owner(7, "4000000000001");
        let b = new_owner(7, "4000000000001");
        assert!(made_by(&a, 7) && !made_by(&a, 8) && !made_by("no-token", 7));
        assert_ne!(a, b);
        assert_eq!(record_of(&a), "4000000000001");
        assert_eq!(record_of("no-token"), "no-token");
        assert_eq!(replaced_of(&a), None);
        let r = new_owner_replacing(9, "4000000000002", Some("4000000000001"));
        assert_eq!(record_of(&r), "4000000000002");
        assert_eq!(replaced_of(&r), Some("4000000000001"));
    }
}
