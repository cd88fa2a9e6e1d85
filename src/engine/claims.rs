//! Index claims are owned by one *attempt*, not just by a record: the owner
//! string is `<record>#<token>`. Two attempts for the same record (say the
//! same card bound to the same contact through two server instances) then
//! cannot mistake each other's claim for their own, so one attempt never
//! releases a claim that the other's completed write relies on.

use std::time::Duration;

/// A fresh owner string for one attempt on `record`.
pub(crate) fn new_owner(record: &str) -> String {
    format!("{record}#{:016x}", rand::random::<u64>())
}

/// The record an owner string names.
pub(crate) fn record_of(owner: &str) -> &str {
    owner.split_once('#').map_or(owner, |(record, _)| record)
}

/// How long to wait before looking again at a claim that another attempt
/// for the same record holds and has not completed yet.
pub(crate) const IN_PROGRESS_BACKOFF: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_name_their_record_and_differ_per_attempt() {
        let a = new_owner("4000000000001");
        let b = new_owner("4000000000001");
        assert_ne!(a, b);
        assert_eq!(record_of(&a), "4000000000001");
        assert_eq!(record_of("legacy"), "legacy");
    }
}
