//! The system of record. The trait speaks in atomic conditional writes
//! (compare-and-set on a record's version, claim-if-absent on an index), so
//! that every backend — the embedded memory store and Redis — gives the
//! engine the same guarantees, and the engine's protocols stay correct with
//! several server instances on one store.

pub mod codec;
pub mod coherence;
pub mod dump;
pub mod events;
pub mod forward;
pub mod instrumented;
mod interface;
pub mod memory;
pub mod records;
pub mod redis;

use crate::domain::{Card, HistoryEntry};
pub use coherence::{Coherence, Stamp};
pub use dump::{CardLoad, DumpItem, DumpPage};
pub use interface::{
    contact_of_slot, load_by_insert, BulkStore, CardStore, ContactStore, HealthStore, RecordStore,
    Store,
};

/// The store's five traits, unnamed: `use crate::store::prelude::*` to
/// call a concrete store's methods (`dyn Store` needs no import).
pub mod prelude {
    pub use super::{
        BulkStore as _, CardStore as _, ContactStore as _, HealthStore as _, RecordStore as _,
    };
}

/// A record with the version that a conditional write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Did a conditional write apply?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    Applied,
    /// Someone else wrote first (or the record is gone): re-read and decide again.
    Conflict,
}

/// The two cross-record indexes whose uniqueness the contract guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    /// mobile number → contact code (a number belongs to one contact).
    Mobile,
    /// contact code → its current card (one usable card per contact).
    ContactCard,
    /// purchase id → the card it was confirmed on (cancel and refund name
    /// only the purchase).
    Purchase,
}

/// Who holds an index entry, and for how long: a claim whose owner never
/// completed its write can be recognised as stale. The age is measured by
/// the store's own clock (Redis `TIME`), both when the claim is stamped and
/// when it is read, so that clock skew between server instances cannot make
/// a live claim look stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub owner: String,
    pub age_ms: i64,
}

/// A page of a card's history, newest first. Entries carry their sequence
/// number; `next` is the cursor for the following (older) page in this
/// store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<(u64, HistoryEntry)>,
    pub next: Option<u64>,
    /// Entries with a lower sequence number are no longer in the store:
    /// the archive has them (docs/adr/0009). 0: the store has them all.
    pub archived_below: u64,
}

/// A record kept in the card's own key space (same hash tag), written in the
/// same atomic step as a card update: idempotency records and purchases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRecordWrite {
    pub key: String,
    pub value: String,
    /// The write applies only if this record does not exist yet (an
    /// operation's outcome under its idempotency key): a second run of the
    /// same operation, however its reads interleaved with the first, is
    /// refused atomically with the card's version check.
    pub create_only: bool,
    pub expiry: Expiry,
}

/// When a record written with a card update expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The retention from now (`ttl_secs` of the write).
    Retention,
    /// When it would have expired anyway: an update never extends a
    /// record's life. The record must exist: if it has expired meanwhile,
    /// the whole write is a `Conflict` (it must not come back to life).
    Keep,
    /// In this many ms (a copy ends about when its source does).
    In(i64),
}

/// A record as read together with its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRead {
    pub value: String,
    /// How long it has left, ms (`None`: it does not expire).
    pub ttl_ms: Option<i64>,
}

impl CardRecordWrite {
    /// An operation's outcome: written once, never overwritten.
    pub fn outcome(key: impl Into<String>, value: impl Into<String>) -> CardRecordWrite {
        CardRecordWrite {
            key: key.into(),
            value: value.into(),
            create_only: true,
            expiry: Expiry::Retention,
        }
    }

    /// A record that the operation updates (a purchase being refunded): it
    /// keeps its expiry, and must still exist.
    pub fn replace(key: impl Into<String>, value: impl Into<String>) -> CardRecordWrite {
        CardRecordWrite {
            key: key.into(),
            value: value.into(),
            create_only: false,
            expiry: Expiry::Keep,
        }
    }

    /// A copy of a record onto another card, created once, with what is
    /// left of its source's life (`None`: the source does not expire).
    pub fn copy(
        key: impl Into<String>,
        value: impl Into<String>,
        ttl_ms: Option<i64>,
    ) -> CardRecordWrite {
        CardRecordWrite {
            key: key.into(),
            value: value.into(),
            create_only: true,
            expiry: ttl_ms.map_or(Expiry::Retention, Expiry::In),
        }
    }
}

/// A purchase's write (docs/adr/0005): the card's compare-and-set with its
/// history entry and its create-only outcome, and the claim of the
/// PurchaseId that binds the purchase to the card. On one Redis node (and
/// in the memory store) all of it is one atomic step, one round trip; on a
/// cluster the PurchaseId's index lives in another slot: the claim goes
/// first, then the card's write (two round trips).
#[derive(Debug, Clone, Copy)]
pub struct PurchaseWrite<'a> {
    pub card: &'a Card,
    pub expected_version: u64,
    pub entry: &'a HistoryEntry,
    /// The outcome, under the purchase's idempotency key (create-only,
    /// kept for `ttl_secs`).
    pub outcome: &'a CardRecordWrite,
    pub ttl_secs: u64,
    pub purchase_id: &'a str,
    /// The claim's owner this write expects (`None`: no claim yet).
    pub claim_expected: Option<&'a str>,
    /// The owner token the claim is written with.
    pub owner: &'a str,
}

/// What became of a [`PurchaseWrite`]. Nothing was written unless
/// `Applied` (a cluster's claim aside: see `claim_held`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseCommit {
    Applied,
    /// The outcome exists already: the purchase was applied (a replay).
    Stored(RecordRead),
    /// The PurchaseId's claim is not the one expected: its current claim
    /// (`None`: released meanwhile), to judge.
    Claimed(Option<Claim>),
    /// The card is no longer at the expected version: the card as it is
    /// now (read in the same step; `None` if it is gone), and whether this
    /// write's owner holds the PurchaseId's claim (a cluster claims before
    /// it writes the card; on one node the claim is only ever taken with
    /// the write).
    Conflict {
        current: Option<Box<Versioned<Card>>>,
        claim_held: bool,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; nothing
    /// was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but its answer never came: it may or may not have
    /// been applied. Retrying the request is safe.
    #[error("store outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A record that cannot be decoded: a bug or foreign data, not a
    /// transient fault.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}
