//! The engine: routes each command to the shard that owns its card — the
//! card's order of commands (`shard.rs`) and its decoded, versioned state
//! (`owned.rs`, one bounded map per shard, coherent through the store's
//! feed) — bounds every shard's queue, and answers `Overloaded` at once
//! when a queue is full. The API sees only [`Engine`] and the plain data of
//! `types.rs`; actix stays inside `shard.rs`.
//!
//! Imports run one way (`crate::module_graph` fails on a cycle): `types`,
//! `error`, `clock`, `claims`, `owned` import no engine module; `kept`
//! (the replies kept per idempotency key, as the store's records of
//! `store/records.rs`) and `support` only those; `context` (the narrow
//! context, [`Ops`]) those; each command family (`cards`, `contacts` with
//! binding, `purchases`, `manual_bonus`, with `replacement` and `lookups`)
//! adds its commands to `Ops` in its own file and imports only the shared
//! layer, never another family; `execute` hands a command to its family;
//! `shard` runs it in its card's turn; this file imports the rest.

// The shared layer: the types the API speaks, the narrow context, what the
// families share. No module below imports a family.
mod claimed_write;
mod claims;
pub mod clock;
pub mod context;
mod error;
mod holds;
mod kept;
mod owned;
mod support;
pub mod types;
// One module per command family, each adding its commands to `Ops`.
mod cards;
// Contacts and binding: one family (the cross-record index protocols).
mod contacts;
mod lookups;
mod manual_bonus;
mod purchases;
mod replacement;
mod replicated;
// Running a command: to its family, in its card's turn.
mod execute;
mod shard;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, Addr, Arbiter};

pub use clock::Clock;
pub use context::{Ops, OpsSettings, PurchaseSettings};
pub use error::EngineError;
pub use support::now_ms;
pub use types::{
    Accrued, BalanceView, Calculated, Command, ConfirmRequest, Confirmed, ContactView, Held,
    HistoryPage, HoldRequest, ManualBonusRequest, Released, Reply, Reversed,
};

use crate::domain::{Card, CardNumber, Contact, ContactCode, ErrorKey, MobileNumber, RuleError};
use crate::metrics as m;
use crate::store::{CardLoad, Index, Store, Versioned};
use shard::{Execute, InFlight, Shard, Turn, Turns};

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub shards: usize,
    /// Threads the shards are spread over.
    pub threads: usize,
    /// Commands a shard accepts (queued plus running) before it refuses.
    pub shard_queue_capacity: usize,
    /// Cards whose decoded state the shards own, in all (split evenly over
    /// the shards; `engine.cache_capacity`): 0 owns none.
    pub cache_capacity: usize,
    pub ops: OpsSettings,
}

struct ShardHandle {
    addr: Addr<Shard>,
    turns: Arc<Turns>,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<m::ShardMetrics>,
}

pub struct Engine {
    shards: Vec<ShardHandle>,
    capacity: usize,
    ops: Arc<Ops>,
    arbiters: Vec<Arbiter>,
}

impl Engine {
    /// Starts the shard actors. Must run inside an actix system.
    pub fn start(store: Arc<dyn Store>, settings: EngineSettings) -> Engine {
        let shard_count = settings.shards.max(1);
        let ops = Arc::new(
            Ops::new(store, settings.ops.clone()).with_owned(settings.cache_capacity, shard_count),
        );
        let arbiters: Vec<Arbiter> = (0..settings.threads.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let capacity = settings.shard_queue_capacity.max(1);
        let shards = (0..shard_count)
            .map(|id| {
                let ops = ops.clone();
                let turns = Arc::new(Turns::default());
                let arbiter = &arbiters[id % arbiters.len()];
                let metrics = Arc::new(m::ShardMetrics::new(id));
                let (actor_turns, actor_metrics) = (turns.clone(), metrics.clone());
                let addr = Shard::start_in_arbiter(&arbiter.handle(), move |_| {
                    Shard::new(capacity, ops, actor_turns, actor_metrics)
                });
                ShardHandle {
                    addr,
                    turns,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                    metrics,
                }
            })
            .collect();
        Engine {
            shards,
            capacity,
            ops,
            arbiters,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of a command's ordering key: the one whose map owns the
    /// card's state (`owned.rs` splits its maps with the same function).
    fn shard_of(&self, key: &str) -> usize {
        owned::shard_index(key, self.shards.len())
    }

    /// Runs a command in its card's turn, or refuses at once when its shard
    /// is at capacity (queued plus running). A free card's command runs on
    /// the calling thread; a busy card's is queued behind it and handed to
    /// the shard actor with `send` (its mailbox holds the same bound, so it
    /// never refuses a command admitted here).
    pub async fn execute(&self, command: Command) -> Result<Reply, EngineError> {
        let key = command.ordering_key();
        let id = self.shard_of(&key);
        let shard = &self.shards[id];
        if shard.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            shard.in_flight.fetch_sub(1, Ordering::AcqRel);
            shard.metrics.rejected();
            return Err(EngineError::Overloaded);
        }
        // The guard travels with the command and is dropped when it has
        // finished, even if the caller has gone away meanwhile.
        let in_flight = InFlight::new(shard.in_flight.clone());
        shard.metrics.pushed();
        match shard.turns.enter(key.clone()) {
            Turn::Now(holding) => {
                let metrics = shard.metrics.clone();
                shard::run_here(self.ops.clone(), metrics, command, holding, in_flight).await
            }
            Turn::Later(gate) => {
                let queued = Execute {
                    command,
                    key,
                    gate,
                    in_flight,
                };
                match shard.addr.send(queued).await {
                    Ok(result) => result,
                    Err(actix::MailboxError::Closed) | Err(actix::MailboxError::Timeout) => {
                        Err(EngineError::Stopped)
                    }
                }
            }
        }
    }

    /// Queue depth per shard, for the saturation gauges.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .collect()
    }

    /// Cards each shard owns and an estimate of the bytes they hold, for
    /// the gauges (sampled when scraped).
    pub fn owned_sizes(&self) -> Vec<(usize, usize)> {
        self.ops.owned_sizes()
    }

    pub async fn balance(&self, number: CardNumber) -> Result<BalanceView, EngineError> {
        match self.execute(Command::Balance { number }).await? {
            Reply::Balance(view) => Ok(view),
            other => Err(unexpected(other)),
        }
    }

    /// The card as the store holds it now — never the owned state — with
    /// a replacement whose last steps were cut short finished first: for a
    /// caller that decides what to write on it (docs/redis.md, "Only
    /// answers read from it"). Outside the card's turn: the commands it
    /// leads to check again on their own read.
    pub async fn card_uncached(&self, number: &CardNumber) -> Result<Card, EngineError> {
        let card = self.ops.load_card(number).await?;
        Ok(self.ops.settled(card).await?.value)
    }

    /// The card of the contact owning `mobile`, for balance by phone.
    pub async fn card_of_mobile(
        &self,
        mobile: &MobileNumber,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        match self.ops.contact_by_mobile_cached(mobile).await? {
            Some(contact) => self.ops.current_card_cached(&contact.value.code).await,
            None => Ok(None),
        }
    }

    pub async fn card_of_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        self.ops.current_card_cached(code).await
    }

    /// Resolves `ContactMobileNumber` to the contact's current card for
    /// block/unblock: the one not blocked for replacement (docs/api.md §5). A
    /// contact whose only card awaits its replacement holds none.
    pub async fn card_for_block(&self, mobile: &MobileNumber) -> Result<CardNumber, EngineError> {
        let contact = self
            .ops
            .contact_by_mobile(mobile)
            .await?
            .ok_or_else(|| support::cannot_find_mobile(mobile))?;
        // A card blocked for replacement is no longer the contact's current
        // card (docs/api.md §5), even before a new card takes its place.
        match self.ops.current_card(&contact.value.code).await? {
            Some(card) if !card.value.is_blocked_for_replacement() => Ok(card.value.number),
            _ => Err(RuleError::new(
                ErrorKey::CannotFindCardNumber,
                "the contact with this mobile number holds no card (other than one blocked for replacement)",
            )
            .into()),
        }
    }

    pub async fn contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<(Contact, Option<Card>)>, EngineError> {
        let Some(contact) = self.ops.store.get_contact_cached(code).await? else {
            return Ok(None);
        };
        let card = self.ops.current_card_cached(code).await?.map(|c| c.value);
        Ok(Some((contact.value, card)))
    }

    /// Bulk creation of New cards goes straight to the store: creating a
    /// card that does not exist yet cannot race a command on it.
    pub async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, EngineError> {
        Ok(self.ops.store.insert_cards(cards).await?)
    }

    /// Bulk load (docs/api.md §8): creates missing cards, and an existing card
    /// still New takes the given category and type — a conditional write,
    /// so a command that moves the card on meanwhile wins.
    pub async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, EngineError> {
        Ok(self.ops.store.load_cards(cards).await?)
    }

    /// The store itself, for export and import (which read and write
    /// records as stored, outside any card's turn: docs/export.md).
    pub fn store(&self) -> Arc<dyn Store> {
        self.ops.store.clone()
    }

    /// The card a purchase was confirmed on.
    pub async fn purchase_card(&self, purchase_id: &str) -> Result<CardNumber, EngineError> {
        match self
            .ops
            .store
            .index_get(Index::Purchase, purchase_id)
            .await?
        {
            Some(claim) => Ok(CardNumber::from_trusted(
                claims::record_of(&claim.owner).to_owned(),
            )),
            None => Err(RuleError::new(
                ErrorKey::PurchaseNotFound,
                format!("no purchase with the id {purchase_id:?}"),
            )
            .into()),
        }
    }

    pub async fn ping_store(&self) -> Result<(), EngineError> {
        Ok(self.ops.store.ping().await?)
    }
}

impl Drop for Engine {
    /// The shard threads belong to the engine: stop them with it (a test
    /// process starts many servers).
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

fn unexpected(reply: Reply) -> EngineError {
    EngineError::Internal(format!("unexpected reply {reply:?}"))
}
