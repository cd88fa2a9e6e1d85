//! The store's interface, split by concern into five traits, none with a
//! defaulted method: an implementation or a wrapper that leaves one out
//! does not compile (E0046). Before, a wrapper that forgot, say, the
//! cached reads silently inherited defaults that read through another
//! path than the store it wraps (issue 20, item 4). A wrapper that
//! changes nothing of a concern forwards all of it with that concern's
//! macro (`forward.rs`), which lists every method once.
//!
//! [`Store`] is all five together: what the engine, the API and the bulk
//! tools hold (`Arc<dyn Store>`); every type that implements the five is
//! one.
//!
//! ```compile_fail,E0046
//! use loyalty::store::{HealthStore, StoreError};
//! use loyalty::domain::CardNumber;
//!
//! /// A wrapper that forgets `replicated`: refused, not defaulted.
//! struct Forgetful(loyalty::store::memory::MemoryStore);
//!
//! #[async_trait::async_trait]
//! impl HealthStore for Forgetful {
//!     async fn ping(&self) -> Result<(), StoreError> {
//!         self.0.ping().await
//!     }
//!     fn coherence(&self) -> Option<&loyalty::store::Coherence> {
//!         self.0.coherence()
//!     }
//! }
//! ```

use async_trait::async_trait;
use futures_util::future::try_join_all;

use super::{
    CardLoad, CardRecordWrite, Cas, Claim, Coherence, DumpPage, HistoryPage, Index, PurchaseCommit,
    PurchaseWrite, RecordRead, StoreError, Versioned,
};
use crate::domain::{Card, CardNumber, CardStatus, Contact, ContactCode, HistoryEntry};

/// Conflicting writes a bulk card update retries before it gives up.
const LOAD_ATTEMPTS: usize = 16;

/// Whether the store answers, and how far it vouches for what it holds.
#[async_trait]
pub trait HealthStore: Send + Sync + 'static {
    /// Does the store answer? (`/ready`)
    async fn ping(&self) -> Result<(), StoreError>;

    /// Before a stored outcome is answered again (a replay), or anything
    /// else decided on a card's state that an earlier, unacknowledged
    /// write may have made: the replicas the configuration asks for
    /// (`store.min_replicas_acked`) hold everything written so far to the
    /// node that holds `number`'s card (on a cluster, its slot's master),
    /// or `Unavailable`. A first answer that came up short of them was a
    /// 503: its retry must not be a 200 for a write that a failover would
    /// still lose. A store without replicas answers `Ok` at once.
    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError>;

    /// The coherence feed the owners of decoded cards read
    /// (`coherence.rs`): which cards changed since a read began, whether
    /// everything before was lost (a restart from a snapshot, a failover to
    /// a replica that missed the latest writes, a flush: its continuity
    /// token changes), whether the store vouches now. The store itself
    /// keeps no decoded card. `None`: it has no feed and vouches for
    /// nothing (every read goes to it, every write reads first). A wrapper
    /// forwards its store's, never one of its own.
    fn coherence(&self) -> Option<&Coherence>;
}

/// Cards: their versioned state, conditional writes and history.
#[async_trait]
pub trait CardStore: Send + Sync + 'static {
    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError>;

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

    /// History entries older than `before` (all when `None`), newest first.
    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError>;
}

/// The records kept in a card's own key space (operations' outcomes,
/// purchases), written with the card by `CardStore::update_card_with`.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
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
}

/// Contacts and the cross-record indexes (mobile → contact, contact →
/// card, PurchaseId → card), claimed and released by their owners.
#[async_trait]
pub trait ContactStore: Send + Sync + 'static {
    /// The contact, if it exists (see [`contact_of_slot`]).
    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError>;

    /// As `get_contact`, for an answer only: may come from the Redis
    /// store's lookup cache, which can lag another instance's acknowledged
    /// write by milliseconds (docs/redis.md). Every read that gates a write
    /// or a refusal uses `get_contact`.
    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError>;

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

    /// As `index_get`, for an answer only: may come from a cache (see
    /// `get_contact_cached`).
    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError>;

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

/// Bulk creation and loading of cards, and the export and import of
/// everything (docs/export.md).
#[async_trait]
pub trait BulkStore: Send + Sync + 'static {
    /// Creates each card that does not exist yet (existing cards keep their
    /// state); returns, per card, whether it was created.
    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError>;

    /// Bulk loading (docs/api.md §8): creates each card that does not exist; an
    /// existing card that is still New takes the given category and type;
    /// any other keeps its state. Per card, in order, what happened. A
    /// store without an atomic way of its own uses [`load_by_insert`].
    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError>;

    /// One page of an export (about `count` records) from `cursor` (`None`:
    /// the start); see [`super::DumpItem`] for the order of the records.
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
}

/// The system of record, all concerns together.
pub trait Store: HealthStore + CardStore + RecordStore + ContactStore + BulkStore {}

impl<T> Store for T where
    T: HealthStore + CardStore + RecordStore + ContactStore + BulkStore + ?Sized
{
}

/// `get_contact` from the slot (`ContactStore::get_contact_slot`), for a
/// store that keeps no other way to read a contact.
pub fn contact_of_slot(slot: Versioned<Option<Contact>>) -> Option<Versioned<Contact>> {
    slot.value.map(|value| Versioned {
        value,
        version: slot.version,
    })
}

/// `BulkStore::load_cards` as inserts and then, for each card that
/// existed, a conditional update: for a store without an atomic way of its
/// own.
pub async fn load_by_insert<S>(store: &S, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError>
where
    S: BulkStore + CardStore + ?Sized,
{
    let created = store.insert_cards(cards).await?;
    let outcomes = cards.iter().zip(created).map(|(card, created)| async move {
        if created {
            Ok(CardLoad::Created)
        } else {
            refresh_new_card(store, card).await
        }
    });
    try_join_all(outcomes).await
}

/// The update half of `load_by_insert`: a conditional write, so that a
/// command that issues the card meanwhile wins and the card keeps whatever
/// it has become.
async fn refresh_new_card<S>(store: &S, card: &Card) -> Result<CardLoad, StoreError>
where
    S: CardStore + ?Sized,
{
    for _ in 0..LOAD_ATTEMPTS {
        let Some(current) = store.get_card(&card.number).await? else {
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
        if store
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
