//! What each command does against the store. Runs inside a shard actor, so
//! for one card at a time per server instance; correctness across instances
//! comes from the store's conditional writes, which every step here uses.

use std::sync::Arc;

use time::OffsetDateTime;

use super::claims::record_of;
use super::clock::Clock;
use super::commands::{BalanceView, Command, HistoryPage, Reply};
use super::error::EngineError;
use super::last_seen::LastSeen;
use super::purchases::PurchaseSettings;
use crate::domain::{
    card::Change, Actor, Card, CardNumber, Contact, ContactCode, ContactField, ErrorKey,
    MobileNumber, Role, RuleError,
};
use crate::metrics as m;
use crate::store::{Cas, Index, Store, Versioned};

/// How many times a command re-reads and retries after losing a
/// conditional write to a concurrent writer before giving up.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// History entries read per round trip when listing transactions.
const TRANSACTIONS_SCAN: usize = 200;

#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// Contact fields that must be filled in for a card to become Active.
    pub required_fields: Vec<ContactField>,
    /// How long an index claim whose owner never completed its write is
    /// respected before another writer may take it over.
    pub claim_lease_ms: i64,
    pub purchases: PurchaseSettings,
}

pub struct Ops {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: OpsSettings,
    /// This server instance, as index claims name it (see `claims`).
    pub(crate) instance: u32,
    pub(crate) clock: Clock,
    /// The base of this instance's writes (`last_seen.rs`).
    pub(crate) last_seen: LastSeen,
}

pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn not_found_card(number: &CardNumber) -> EngineError {
    RuleError::new(
        ErrorKey::CannotFindCardNumber,
        format!("no card with the number {number}"),
    )
    .into()
}

impl Ops {
    pub fn new(store: Arc<dyn Store>, settings: OpsSettings) -> Ops {
        Ops {
            store,
            settings,
            instance: rand::random(),
            clock: Clock::system(),
            last_seen: LastSeen::new(),
        }
    }

    /// The same instance reading `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Clock) -> Ops {
        self.clock = clock;
        self
    }

    pub async fn execute(&self, command: Command) -> Result<Reply, EngineError> {
        // A status change first finishes a replacement its card takes part
        // in (purchases and reads do so where they load the card).
        // (Issue, activate, block and unblock check on the read their write
        // is decided on: `change_status`.)
        if let Command::BindTo { actor, number, .. } = &command {
            if let Some(card) = self.store.get_card(number).await? {
                self.finish_replacement(&card.value, actor).await?;
            }
        }
        match command {
            Command::Balance { number } => self.balance(&number).await.map(Reply::Balance),
            Command::Issue { actor, number } => {
                self.issue(&actor, &number).await.map(|_| Reply::Done)
            }
            Command::BindTo {
                actor,
                number,
                mobile,
            } => self
                .bind(&actor, &number, &mobile)
                .await
                .map(|_| Reply::Done),
            Command::Active { actor, number } => {
                self.activate(&actor, &number).await.map(|_| Reply::Done)
            }
            Command::Block {
                actor,
                number,
                mobile,
                reason_code,
                reason_name,
            } => self
                .block(&actor, &number, mobile.as_ref(), &reason_code, reason_name)
                .await
                .map(|_| Reply::Done),
            Command::Unblock {
                actor,
                number,
                mobile,
                reason_code,
                reason_name,
            } => self
                .unblock(&actor, &number, mobile.as_ref(), &reason_code, reason_name)
                .await
                .map(|_| Reply::Done),
            Command::UpsertContact { code, patch } => {
                self.upsert_contact(code, patch).await.map(Reply::Contact)
            }
            Command::History {
                number,
                before,
                limit,
            } => {
                self.load_card(&number).await?;
                Ok(Reply::History(
                    self.store
                        .card_history(&number, before, limit)
                        .await?
                        .into(),
                ))
            }
            Command::Transactions {
                number,
                before,
                limit,
            } => self
                .transactions(&number, before, limit)
                .await
                .map(Reply::History),
            Command::Calculate {
                number,
                amount,
                bonus_to_pay,
            } => self
                .calculate(&number, amount, bonus_to_pay)
                .await
                .map(Reply::Calculated),
            Command::Confirm(request) => self.confirm(&request).await.map(Reply::Confirmed),
            Command::Cancel {
                actor,
                number,
                purchase_id,
            } => self
                .cancel(&actor, &number, &purchase_id)
                .await
                .map(Reply::Reversed),
            Command::Refund {
                actor,
                number,
                purchase_id,
                refund_id,
                amount,
            } => self
                .refund(&actor, &number, &purchase_id, &refund_id, amount)
                .await
                .map(Reply::Reversed),
            Command::ManualBonus(request) => self.manual_bonus(&request).await.map(Reply::Accrued),
            Command::Hold(request) => self.hold(&request).await.map(Reply::Held),
            Command::Release {
                actor,
                number,
                purchase_id,
            } => self
                .release(&actor, &number, &purchase_id)
                .await
                .map(Reply::Released),
        }
    }

    /// Pages back through the history, keeping the bonus operations.
    async fn transactions(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, EngineError> {
        self.load_card(number).await?;
        let mut cursor = before;
        let mut entries = Vec::new();
        loop {
            let page = self
                .store
                .card_history(number, cursor, TRANSACTIONS_SCAN)
                .await?;
            for (seq, entry) in page.entries {
                if entries.len() == limit {
                    return Ok(HistoryPage {
                        entries,
                        next: Some(seq + 1),
                        older_archived: false,
                    });
                }
                if entry.bonus.is_some() {
                    entries.push((seq, entry));
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => {
                    return Ok(HistoryPage {
                        entries,
                        next: None,
                        older_archived: page.archived_below > 0,
                    })
                }
            }
        }
    }

    pub(crate) async fn load_card(
        &self,
        number: &CardNumber,
    ) -> Result<Versioned<Card>, EngineError> {
        let since = self.store.continuity();
        let card = self
            .store
            .get_card(number)
            .await?
            .ok_or_else(|| not_found_card(number))?;
        self.last_seen.saw(&card, since);
        Ok(card)
    }

    /// The card for an answer that nothing is written or refused on
    /// (balance, calculate): may come from the store's cache.
    pub(crate) async fn load_card_cached(
        &self,
        number: &CardNumber,
    ) -> Result<Versioned<Card>, EngineError> {
        self.store
            .get_card_cached(number)
            .await?
            .ok_or_else(|| not_found_card(number))
    }

    /// Finishes the replacement `card` takes part in, if its last steps
    /// were cut short. Returns whether it did: the card has changed, read it
    /// again.
    pub(crate) async fn finish_replacement(
        &self,
        card: &Card,
        actor: &Actor,
    ) -> Result<bool, EngineError> {
        match card.unfinished_replacement() {
            Some((old, new)) => {
                self.complete_replacement(&old, &new, actor).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The card as a read should show it: with an unfinished replacement
    /// finished first (by the system, as no one's request asked for it).
    pub(crate) async fn settled(
        &self,
        card: Versioned<Card>,
    ) -> Result<Versioned<Card>, EngineError> {
        let system = Actor {
            login: "system".into(),
            role: Role::Administrator,
        };
        if self.finish_replacement(&card.value, &system).await? {
            return self.load_card(&card.value.number).await;
        }
        Ok(card)
    }

    pub(crate) async fn balance(&self, number: &CardNumber) -> Result<BalanceView, EngineError> {
        let card = self
            .settled(self.load_card_cached(number).await?)
            .await?
            .value;
        let contact = match &card.contact {
            Some(code) => self.store.get_contact_cached(code).await?.map(|c| c.value),
            None => None,
        };
        Ok(BalanceView { card, contact })
    }

    /// The contact that owns `mobile`, verified from both sides: the index
    /// names the contact and the contact still has that number.
    pub(crate) async fn contact_by_mobile(
        &self,
        mobile: &MobileNumber,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        self.contact_by_mobile_read(mobile, false).await
    }

    /// As [`Ops::contact_by_mobile`], for an answer only (balance by phone):
    /// may come from the store's cache.
    pub(crate) async fn contact_by_mobile_cached(
        &self,
        mobile: &MobileNumber,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        self.contact_by_mobile_read(mobile, true).await
    }

    async fn contact_by_mobile_read(
        &self,
        mobile: &MobileNumber,
        cached: bool,
    ) -> Result<Option<Versioned<Contact>>, EngineError> {
        let claim = if cached {
            self.store
                .index_get_cached(Index::Mobile, mobile.as_str())
                .await?
        } else {
            self.store.index_get(Index::Mobile, mobile.as_str()).await?
        };
        let Some(claim) = claim else {
            return Ok(None);
        };
        let code = ContactCode::from_trusted(record_of(&claim.owner).to_owned());
        let contact = if cached {
            self.store.get_contact_cached(&code).await?
        } else {
            self.store.get_contact(&code).await?
        };
        Ok(contact.filter(|c| c.value.mobile.as_ref() == Some(mobile)))
    }

    /// The contact's current card, verified from both sides: the index names
    /// the card and the card names the contact. A claim whose card write
    /// never happened is not a binding.
    pub(crate) async fn current_card(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        self.current_card_read(code, false).await
    }

    /// As [`Ops::current_card`], for an answer only (balance by phone or
    /// code, contact views): may come from the store's cache.
    pub(crate) async fn current_card_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        self.current_card_read(code, true).await
    }

    async fn current_card_read(
        &self,
        code: &ContactCode,
        cached: bool,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        let claim = if cached {
            self.store
                .index_get_cached(Index::ContactCard, code.as_str())
                .await?
        } else {
            self.store
                .index_get(Index::ContactCard, code.as_str())
                .await?
        };
        let Some(claim) = claim else {
            return Ok(None);
        };
        let number = CardNumber::from_trusted(record_of(&claim.owner).to_owned());
        let card = if cached {
            self.store.get_card_cached(&number).await?
        } else {
            self.store.get_card(&number).await?
        };
        Ok(card.filter(|c| c.value.contact.as_ref() == Some(code)))
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

    /// The card a write is computed on before any read: as this instance
    /// last saw it, else as the store's cache has it (`None`: read it).
    /// Possibly behind: only for a write that names its version, never
    /// for an answer or a refusal (`last_seen.rs`).
    pub(crate) async fn write_base(
        &self,
        number: &CardNumber,
    ) -> Result<Option<Versioned<Card>>, EngineError> {
        match self.last_seen.get(number, self.store.continuity()) {
            Some(card) => Ok(Some(card)),
            None => Ok(self.store.get_card_cached(number).await?),
        }
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
                    let since = self.store.continuity();
                    if self
                        .store
                        .update_card(&card, current.version, &entry)
                        .await?
                        == Cas::Applied
                    {
                        m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                        self.last_seen.wrote(&card, current.version, &[], since);
                        return Ok(());
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }

    /// A command's change of its card (issue, activate, block, unblock):
    /// as [`Ops::change_card`], but the first try is on the write base
    /// (one round trip when it is current);
    /// a refusal or "nothing to do" is only answered on a fresh read, and
    /// a fresh read first finishes a replacement the card takes part in.
    /// `needs_contact`: whether the rules need the contact's data sufficiency
    /// (activate, unblock); other operations skip that read.
    async fn change_status<F>(
        &self,
        number: &CardNumber,
        needs_contact: bool,
        actor: &Actor,
        mut decide: F,
    ) -> Result<(), EngineError>
    where
        F: for<'a> FnMut(&'a Card, bool) -> Result<Change, RuleError>,
    {
        let mut base = self
            .write_base(number)
            .await?
            .filter(|c| c.value.unfinished_replacement().is_none());
        for _ in 0..MAX_ATTEMPTS {
            let (current, fresh) = match base.take() {
                Some(card) => (card, false),
                None => {
                    let card = self.load_card(number).await?;
                    if self.finish_replacement(&card.value, actor).await? {
                        continue;
                    }
                    (card, true)
                }
            };
            let sufficient = needs_contact && self.is_sufficient(&current.value).await?;
            // Answered on a fresh read, a refusal ("already Blocked") or
            // "nothing to do" (the card is already Issued, Active) may be
            // the work of this request's own first attempt, answered 503
            // for want of replicas: not answered before they hold it
            // (`replicated.rs`).
            let change = match decide(&current.value, sufficient) {
                Ok(change) => change,
                Err(refusal) if fresh => return self.replicated(number, Err(refusal.into())).await,
                Err(_) => continue,
            };
            match change {
                Change::Unchanged if fresh => return self.replicated(number, Ok(())).await,
                Change::Unchanged => continue,
                Change::Changed { card, entry } => {
                    let since = self.store.continuity();
                    if self
                        .store
                        .update_card(&card, current.version, &entry)
                        .await?
                        == Cas::Applied
                    {
                        m::card_transition(entry.operation.as_str(), entry.from, entry.to);
                        self.last_seen.wrote(&card, current.version, &[], since);
                        return Ok(());
                    }
                }
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }

    pub(crate) async fn issue(
        &self,
        actor: &Actor,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.change_status(number, false, actor, |card, _| card.issue(actor, now))
            .await
    }

    pub(crate) async fn activate(
        &self,
        actor: &Actor,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        let now = self.clock.now();
        self.change_status(number, true, actor, |card, sufficient| {
            card.activate(sufficient, actor, now)
        })
        .await
    }

    /// With `ContactMobileNumber` given, the card must belong to that
    /// contact; this is a lookup, checked before the block/unblock rules.
    async fn check_owner(
        &self,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
    ) -> Result<(), EngineError> {
        // Without a mobile number there is nothing to check here: the
        // write's own read answers a card that does not exist.
        let Some(mobile) = mobile else {
            return Ok(());
        };
        let card = self.load_card(number).await?;
        let contact = self
            .contact_by_mobile(mobile)
            .await?
            .ok_or_else(|| cannot_find_mobile(mobile))?;
        if card.value.contact.as_ref() != Some(&contact.value.code) {
            return Err(RuleError::new(
                ErrorKey::CardNumberBindToAnotherContact,
                "the card is not bound to the contact with this mobile number",
            )
            .into());
        }
        Ok(())
    }

    pub(crate) async fn block(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
        reason_code: &str,
        reason_name: Option<String>,
    ) -> Result<(), EngineError> {
        self.check_owner(number, mobile).await?;
        let now = self.clock.now();
        self.change_status(number, false, actor, |card, _| {
            card.block(actor, reason_code, reason_name.clone(), now)
        })
        .await
    }

    pub(crate) async fn unblock(
        &self,
        actor: &Actor,
        number: &CardNumber,
        mobile: Option<&MobileNumber>,
        reason_code: &str,
        reason_name: Option<String>,
    ) -> Result<(), EngineError> {
        self.check_owner(number, mobile).await?;
        let now = self.clock.now();
        self.change_status(number, true, actor, |card, sufficient| {
            card.unblock(actor, reason_code, reason_name.clone(), sufficient, now)
        })
        .await
    }
}

pub(crate) fn cannot_find_mobile(mobile: &MobileNumber) -> EngineError {
    RuleError::new(
        ErrorKey::CannotFindMobile,
        format!("no contact with the mobile number {mobile}"),
    )
    .into()
}
