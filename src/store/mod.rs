//! The system of record. The trait speaks in atomic conditional writes
//! (compare-and-set on a record's version, claim-if-absent on an index), so
//! that every backend — the embedded memory store and Redis — gives the
//! engine the same guarantees, and the engine's protocols stay correct with
//! several server instances on one store.

pub mod codec;
pub mod dump;
pub mod events;
pub mod instrumented;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use futures_util::future::try_join_all;

use crate::domain::{Card, CardNumber, CardStatus, Contact, ContactCode, HistoryEntry};
pub use dump::{CardLoad, DumpItem, DumpPage};

/// Conflicting writes a bulk card update retries before it gives up.
const LOAD_ATTEMPTS: usize = 16;

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Does the store answer? (`/ready`)
    async fn ping(&self) -> Result<(), StoreError>;

    /// Before a stored outcome is answered again (a replay), or anything
    /// else decided on a card's state that an earlier, unacknowledged
    /// write may have made: the replicas the configuration asks for
    /// (`store.min_replicas_acked`) hold everything written so far to the
    /// node that holds `number`'s card (on a cluster, its slot's master),
    /// or `Unavailable`. A first answer that came up short of them was a
    /// 503: its retry must not be a 200 for a write that a failover would
    /// still lose. Nothing to do elsewhere.
    async fn replicated(&self, _number: &CardNumber) -> Result<(), StoreError> {
        Ok(())
    }

    /// A token that stays the same for as long as the store vouches that
    /// it has lost nothing: no version it holds went back meanwhile (a
    /// restart from a snapshot, a failover to a replica that missed the
    /// latest writes, a flush). `None`: it cannot vouch for now. What a
    /// version check cannot tell apart — a card written back up to a
    /// version remembered from before the loss — the engine tells apart by
    /// this token (`engine/last_seen.rs`). No default: a wrapper must
    /// forward its store's, never vouch for it.
    fn continuity(&self) -> Option<u64>;

    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError>;

    /// Creates each card that does not exist yet (existing cards keep their
    /// state); returns, per card, whether it was created.
    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError>;

    /// Bulk loading (docs/api.md §8): creates each card that does not exist; an
    /// existing card that is still New takes the given category and type;
    /// any other keeps its state. Per card, in order, what happened.
    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError> {
        let created = self.insert_cards(cards).await?;
        let outcomes = cards.iter().zip(created).map(|(card, created)| async move {
            if created {
                Ok(CardLoad::Created)
            } else {
                self.refresh_new_card(card).await
            }
        });
        try_join_all(outcomes).await
    }

    /// The update half of `load_cards`: a conditional write, so that a
    /// command that issues the card meanwhile wins and the card keeps
    /// whatever it has become.
    async fn refresh_new_card(&self, card: &Card) -> Result<CardLoad, StoreError> {
        for _ in 0..LOAD_ATTEMPTS {
            let Some(current) = self.get_card(&card.number).await? else {
                return Ok(CardLoad::Existing);
            };
            let stored = &current.value;
            if stored.status != CardStatus::New
                || (stored.category == card.category && stored.card_type == card.card_type)
            {
                return Ok(CardLoad::Existing);
            }
            let mut updated = stored.clone();
            updated.category = card.category;
            updated.card_type = card.card_type;
            if self
                .update_card_with(&updated, current.version, None, &[], 0)
                .await?
                == Cas::Applied
            {
                return Ok(CardLoad::Updated);
            }
        }
        Err(StoreError::Unavailable(format!(
            "card {} kept changing during the load",
            card.number
        )))
    }

    /// One page of an export (about `count` records) from `cursor` (`None`:
    /// the start); see [`DumpItem`] for the order of the records.
    async fn dump_page(&self, cursor: Option<&str>, count: usize) -> Result<DumpPage, StoreError>;

    /// Creates a card as exported, with its history (oldest first), unless
    /// a card with its number exists; returns whether it did.
    async fn restore_card(&self, card: &Card, history: &[HistoryEntry])
        -> Result<bool, StoreError>;

    /// Creates a record of a card as exported, to expire in `ttl_ms`
    /// (`None`: never), unless it exists or the card does not; returns
    /// whether it did.
    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Writes `card` and appends `entry` to its history, atomically, if the
    /// stored version is still `expected_version`.
    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError>;

    /// Like `update_card` (the history entry is optional here: moving a
    /// record between cards is no event of the card), and in the same
    /// atomic write sets each of `records` (kept for `ttl_secs`, which is
    /// never 0): the stored outcome of an operation and its balance change
    /// are written together or not at all. A `create_only` record that
    /// exists already makes the whole write a `Conflict`.
    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError>;

    /// A purchase's write in as few round trips as the store allows
    /// (see [`PurchaseWrite`]): claim the PurchaseId, check the outcome does
    /// not exist and the card's version, write card, history, outcome and
    /// change event.
    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError>;

    /// A record written by `update_card_with`, unless expired.
    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The card and one of its records, read atomically: the record is the
    /// one that goes with the card's version (every record write bumps it),
    /// so a conditional write on that version also proves the record
    /// unchanged.
    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError>;

    /// History entries older than `before` (all when `None`), newest first.
    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError>;

    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        let slot = self.get_contact_slot(code).await?;
        Ok(slot.value.map(|value| Versioned {
            value,
            version: slot.version,
        }))
    }

    /// Reads that may be answered from a cache that can lag another
    /// instance's acknowledged write by milliseconds (the Redis store's
    /// record cache; docs/redis.md). Only for answers that nothing is
    /// written or refused on — balances, views, calculate. Every read that
    /// gates a write or a refusal uses the plain methods, which always ask
    /// the store. A store without a cache answers as the plain methods do.
    async fn get_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, StoreError> {
        self.get_card(number).await
    }

    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        self.get_contact(code).await
    }

    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        self.index_get(index, key).await
    }

    /// A contact's record for a conditional write: the contact if it
    /// exists, and the record's version even when it does not (0: never
    /// written; a fence raises it too), so that a fenced creation fails.
    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError>;

    /// Creates or updates a contact if the record's version (see
    /// `get_contact_slot`) is still `expected_version`.
    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError>;

    /// Raises the version of a contact's record (existing or not) if it is
    /// still `expected_version`, changing nothing else: a slow writer that
    /// read the old version can no longer write. Taking over a stale index
    /// claim fences the record that claim was made for.
    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError>;

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError>;

    /// Sets `key` to `owner`, stamped with the store's clock, if its current
    /// owner is `expected` (`None`: absent). On refusal returns the current
    /// claim.
    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError>;

    /// Removes `key` if `owner` still holds it.
    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError>;
}
