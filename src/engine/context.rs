//! The narrow context every command family runs on: the store, the
//! settings, this instance's identity and clock, and the cards' decoded
//! state the shards own (`owned.rs`: answers and write bases), with the primitive reads and the conditional writes
//! (with their retry on a lost race) that the families build on. The families (`cards`, `contacts`,
//! `purchases`, `manual_bonus`, `replacement`) each add their
//! commands to [`Ops`] in their own file and import only this module,
//! `support` and `types`: never each other.

use std::sync::Arc;

use super::clock::Clock;
use super::error::EngineError;
use super::kept::{Kept, Stored};
use super::owned::{Continuity, Owned};
use super::support::{not_found_card, MAX_ATTEMPTS};
use crate::domain::purchase::BonusRules;
use crate::domain::{card::Change, Card, CardNumber, ContactField, HistoryEntry, RuleError};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, Store, Versioned};

/// Cards owned by an `Ops` made without the engine (tests, tools): the
/// engine sizes it from `engine.cache_capacity` and its shards.
const DEFAULT_OWNED: usize = 32_768;

#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// Contact fields that must be filled in for a card to become Active.
    pub required_fields: Vec<ContactField>,
    /// How long an index claim whose owner never completed its write is
    /// respected before another writer may take it over.
    pub claim_lease_ms: i64,
    pub purchases: PurchaseSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseSettings {
    pub rules: BonusRules,
    /// A hold's life when the request names none (`bonus.hold_secs`), and
    /// the longest a request may ask for (`bonus.hold_max_secs`).
    pub hold_secs: u64,
    pub hold_max_secs: u64,
    /// How long idempotency records (and so purchases, for cancel and
    /// refund) are kept.
    pub retention_secs: u64,
}

pub struct Ops {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: OpsSettings,
    /// This server instance, as index claims name it (see `claims`).
    pub(crate) instance: u32,
    pub(crate) clock: Clock,
    /// The cards' decoded state, one map per shard (`owned.rs`).
    pub(crate) owned: Owned,
}

impl Ops {
    pub fn new(store: Arc<dyn Store>, settings: OpsSettings) -> Ops {
        Ops {
            store,
            settings,
            instance: rand::random(),
            clock: Clock::system(),
            owned: Owned::new(DEFAULT_OWNED, 1),
        }
    }

    /// Owns `capacity` cards in all, split over `shards` maps by the
    /// engine's routing (0: none, every read and write asks the store).
    pub fn with_owned(mut self, capacity: usize, shards: usize) -> Ops {
        self.owned = Owned::new(capacity, shards);
        self
    }

    /// The store's continuity token now (`owned.rs`): taken before a read
    /// or write whose result becomes a base.
    pub(crate) fn continuity(&self) -> Continuity {
        self.store.coherence().and_then(|c| c.continuity())
    }

    /// Cards owned and their bytes, per shard.
    pub(crate) fn owned_sizes(&self) -> Vec<(usize, usize)> {
        self.owned.sizes()
    }

    /// The same instance reading `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Clock) -> Ops {
        self.clock = clock;
        self
    }

    /// The card as the store holds it now, read from the store (never
    /// answered from owned state): for what a write or a refusal is decided
    /// on. What it read becomes the card's owned state.
    pub(crate) async fn load_card(
        &self,
        number: &CardNumber,
    ) -> Result<Versioned<Card>, EngineError> {
        let coherence = self.store.coherence();
        let stamp = coherence.and_then(|c| c.stamp(number.as_str()));
        let card = self
            .store
            .get_card(number)
            .await?
            .ok_or_else(|| not_found_card(number))?;
        self.owned.filled(&card, stamp, coherence);
        Ok(card)
    }

    /// The card for an answer that nothing is written or refused on
    /// (balance, calculate): the owned state while it is coherent, else
    /// read from the store (and owned from then on).
    pub(crate) async fn load_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Versioned<Card>, EngineError> {
        self.card_cached(number)
            .await?
            .ok_or_else(|| not_found_card(number))
    }

    /// As `load_card_cached`, with a missing card as `None`.
    pub(crate) async fn card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        let coherence = self.store.coherence();
        if let Some(card) = coherence.and_then(|c| self.owned.answer(number, c)) {
            return Ok(Some(card));
        }
        let stamp = coherence.and_then(|c| c.stamp(number.as_str()));
        let card = self.store.get_card(number).await?;
        if let Some(card) = &card {
            self.owned.filled(card, stamp, coherence);
        }
        Ok(card)
    }

    /// The card a write is computed on before any read: as this instance
    /// last saw it (`None`: read it). Possibly behind: only for a write
    /// that names its version, never for an answer or a refusal
    /// (`owned.rs`).
    pub(crate) async fn write_base(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        Ok(self.owned.get(number, self.continuity()))
    }

    pub(crate) async fn stored<T: Kept>(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<Stored<T>>, EngineError> {
        match self.store.get_card_record(number, key).await? {
            Some(raw) => T::decode(key, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// The card and the operation's stored outcome under `key`, read
    /// together: the outcome is the one that goes with the card's version.
    pub(crate) async fn read_with<T: Kept>(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Versioned<Card>, Option<(Stored<T>, Option<i64>)>), EngineError> {
        let (card, record) = self.store.get_card_with_record(number, key).await?;
        let card = card.ok_or_else(|| not_found_card(number))?;
        let stored = match record {
            Some(r) => Some((T::decode(key, &r.value)?, r.ttl_ms)),
            None => None,
        };
        Ok((card, stored))
    }

    /// Writes the card and the records, or reports that a concurrent writer
    /// came first — a newer card version, or the operation's outcome stored
    /// already (the caller then reads again and finds that outcome).
    pub(crate) async fn commit(
        &self,
        next: &Card,
        version: u64,
        entry: Option<&HistoryEntry>,
        records: Vec<CardRecordWrite>,
    ) -> Result<Cas, EngineError> {
        let since = self.continuity();
        let cas = self
            .store
            .update_card_with(
                next,
                version,
                entry,
                &records,
                self.settings.purchases.retention_secs,
            )
            .await?;
        if cas == Cas::Applied {
            let written: Vec<(&str, &str)> = records
                .iter()
                .map(|r| (r.key.as_str(), r.value.as_str()))
                .collect();
            self.owned.wrote(next, version, &written, since);
        }
        Ok(cas)
    }

    pub(crate) async fn is_sufficient(&self, card: &Card) -> Result<bool, EngineError> {
        let Some(code) = &card.contact else {
            return Ok(false);
        };
        Ok(self
            .store
            .get_contact(code)
            .await?
            .is_some_and(|c| c.value.is_sufficient(&self.settings.required_fields)))
    }

    /// Reads the card, lets `decide` apply the rules, writes the result
    /// conditionally; on a lost race, reads again and decides again.
    /// `needs_contact`: whether the rules need the contact's data sufficiency
    /// (activate, unblock); other operations skip that read.
    pub(crate) async fn change_card<F>(
        &self,
        number: &CardNumber,
        needs_contact: bool,
        mut decide: F,
    ) -> Result<(), EngineError>
    where
        F: for<'a> FnMut(&'a Card, bool) -> Result<Change, RuleError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.load_card(number).await?;
            let sufficient = needs_contact && self.is_sufficient(&current.value).await?;
            match decide(&current.value, sufficient)? {
                Change::Unchanged => return Ok(()),
                Change::Changed { card, entry } => {
                    let since = self.continuity();
                    if self
                        .store
                        .update_card(&card, current.version, &entry)
                        .await?
                        == Cas::Applied
                    {
                        m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                        self.owned.wrote(&card, current.version, &[], since);
                        return Ok(());
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }
}
