//! Purchases and manual accruals, exactly once. Each operation's outcome is
//! stored under its idempotency key in the card's own key space, written in
//! the same atomic step as the ledger change: a crash loses both or neither,
//! and a replay finds the stored outcome instead of applying twice.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::claims::{new_owner, record_of};
use super::error::EngineError;
use super::kept::{purchase_fingerprint, Kept, ReversalOutcome, Stored};
use super::ops::{Ops, MAX_ATTEMPTS};
use crate::domain::history::note_debt;
use crate::domain::ledger::LotSource;
use crate::domain::purchase::{self, BonusRules, Reversal};
use crate::domain::{
    Actor, Amount, BonusMovement, BonusType, Card, CardNumber, ErrorKey, HistoryEntry, Operation,
    RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, Claim, Index, PurchaseCommit, PurchaseWrite, Versioned};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calculated {
    pub accrual: Amount,
    pub max_bonus_to_pay: Amount,
    pub discount_bp: i64,
    /// What confirm would refuse the purchase with: the till still learns
    /// `max_bonus_to_pay`, to offer the maximum instead.
    pub refusal: Option<RuleError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    #[serde(rename = "n")]
    pub number: CardNumber,
    #[serde(rename = "i")]
    pub purchase_id: String,
    #[serde(rename = "m")]
    pub amount: Amount,
    #[serde(rename = "b", default, skip_serializing_if = "Amount::is_zero")]
    pub bonus_to_pay: Amount,
    #[serde(rename = "a", default, skip_serializing_if = "Amount::is_zero")]
    pub accrual: Amount,
    #[serde(rename = "af")]
    pub accrual_active_from: Date,
    #[serde(rename = "ae")]
    pub accrual_expire_date: Date,
    #[serde(
        rename = "dp",
        default,
        skip_serializing_if = "super::kept::is_zero_bp"
    )]
    pub discount_bp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reversed {
    #[serde(rename = "n")]
    pub number: CardNumber,
    #[serde(rename = "i")]
    pub purchase_id: String,
    #[serde(rename = "ri", default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// Money refunded by this operation (the whole purchase for a cancel).
    #[serde(rename = "m")]
    pub amount: Amount,
    #[serde(rename = "ar", default, skip_serializing_if = "Amount::is_zero")]
    pub accrual_reversed: Amount,
    #[serde(rename = "br", default, skip_serializing_if = "Amount::is_zero")]
    pub bonus_returned: Amount,
    #[serde(rename = "u", default, skip_serializing_if = "Amount::is_zero")]
    pub uncovered: Amount,
    #[serde(rename = "rt")]
    pub refunded_total: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrued {
    #[serde(rename = "n")]
    pub number: CardNumber,
    #[serde(rename = "i")]
    pub operation_id: String,
    #[serde(rename = "m")]
    pub amount: Amount,
    #[serde(rename = "t")]
    pub bonus_type: BonusType,
    #[serde(rename = "af")]
    pub active_from: Date,
    #[serde(rename = "ae", default)]
    pub expire_date: Option<Date>,
}

/// Which reversal of a purchase.
#[derive(Debug, Clone, Copy)]
enum Reversing<'a> {
    Cancel,
    Refund { refund_id: &'a str, amount: Amount },
}

#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    pub actor: Actor,
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub date: Option<Date>,
}

#[derive(Debug, Clone)]
pub struct ManualBonusRequest {
    pub actor: Actor,
    pub number: CardNumber,
    pub operation_id: String,
    pub amount: Amount,
    pub bonus_type: BonusType,
    pub active_from: Option<Date>,
    pub expire_date: Option<Date>,
    pub comment: Option<String>,
}

/// A confirm's write, decided on one version of the card.
struct Prepared {
    next: Card,
    entry: HistoryEntry,
    stored: Stored<Confirmed>,
    /// What the confirm did to holds (counted once it lands).
    holds: super::holds::HoldEffect,
}

/// A cancel or refund of one purchase, as its outcome is kept.
struct ReversalOf<'a> {
    purchase_id: &'a str,
    what: Reversing<'a>,
    outcome_key: &'a str,
    fingerprint: &'a str,
}

enum ReversalStep {
    /// Applied before: answer as then (or the RefundId's conflict).
    Replay(Result<Reversed, EngineError>),
    Apply(Box<ReversalWrite>),
}

/// A reversal's write: the next card, its entry, the purchase's record
/// with the reversal's outcome in it, and that outcome.
struct ReversalWrite {
    next: Card,
    entry: HistoryEntry,
    updated: Stored<Confirmed>,
    outcome: Reversed,
}

/// A reversal that landed: counted, then answered.
fn reversal_done(outcome: Reversed) -> Reversed {
    m::bonus_amount("accrual_reversed", outcome.accrual_reversed);
    m::bonus_amount("write_off_returned", outcome.bonus_returned);
    outcome
}

/// A purchase that landed: counted, then answered.
fn confirmed(outcome: Confirmed) -> Confirmed {
    m::bonus_amount("accrual", outcome.accrual);
    m::bonus_amount("write_off", outcome.bonus_to_pay);
    outcome
}

/// Replacements followed from a purchase's card to the current one.
const MAX_REPLACEMENT_CHAIN: usize = 16;

pub(crate) fn purchase_key(purchase_id: &str) -> String {
    format!("purchase:{purchase_id}")
}

pub(super) fn conflict(what: &str) -> EngineError {
    RuleError::new(
        ErrorKey::IdempotencyConflict,
        format!("{what} was already used with a different request"),
    )
    .into()
}

fn purchase_not_found(purchase_id: &str) -> EngineError {
    RuleError::new(
        ErrorKey::PurchaseNotFound,
        format!("no purchase with the id {purchase_id:?}"),
    )
    .into()
}

pub(super) fn bonus_entry(
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

impl Ops {
    /// Binds a PurchaseId to its card, once, for the retention (the store
    /// expires the binding after it, docs/redis.md): cancel and refund
    /// name only the purchase. The same id on another card is a conflict.
    /// An id bound longer ago than the retention whose outcome is gone has
    /// expired: applying it again would count the purchase twice.
    ///
    /// Returns the owner token this attempt holds the claim under (`held`:
    /// the one it claimed under before, kept while it still holds). A claim
    /// of the same card made by another attempt (a twin on another
    /// instance, a retry) is taken over, compare-and-swap on its token,
    /// rather than relied on: that attempt may give its claim back on a
    /// refusal (`release_purchase`), which must never strip the claim of a
    /// purchase that lands. Called after every read of the card, so that a
    /// write always follows a claim taken after the read it was decided on.
    pub(super) async fn claim_purchase(
        &self,
        purchase_id: &str,
        number: &CardNumber,
        held: Option<&str>,
    ) -> Result<String, EngineError> {
        let mine = held.map_or_else(|| new_owner(self.instance, number.as_str()), str::to_owned);
        // Claim first: one round trip when the id is new (the usual case);
        // a refusal hands back the current claim to judge.
        let mut expected: Option<String> = None;
        for _ in 0..MAX_ATTEMPTS {
            match self
                .store
                .index_claim(Index::Purchase, purchase_id, expected.as_deref(), &mine)
                .await?
            {
                Ok(()) => return Ok(mine),
                Err(Some(claim)) if claim.owner == mine => return Ok(mine),
                Err(Some(claim)) => {
                    self.judge_purchase_claim(&claim, number)?;
                    expected = Some(claim.owner);
                }
                // Released between our attempt and its answer: try again.
                Err(None) => expected = None,
            }
        }
        Err(EngineError::Contention(format!("purchase {purchase_id}")))
    }

    /// Gives back the claim `owner` holds on a PurchaseId when the confirm
    /// that took it is refused on a later read (a lost race left too
    /// little): a refused request stores nothing (docs/api-decisions.md),
    /// so the id stays free for another card. The card is first rewritten
    /// unchanged at the version the refusal was decided on (a fence): a
    /// twin attempt that decided on that version or an older one can no
    /// longer write, and one that reads after the fence claims again after
    /// its read. The release is compare-and-swap on `owner`: a claim a twin
    /// took over stays. `false`: the card changed meanwhile, nothing was
    /// released, decide again on a fresh read.
    pub(super) async fn release_purchase(
        &self,
        purchase_id: &str,
        owner: &str,
        card: &Versioned<Card>,
    ) -> Result<bool, EngineError> {
        if self
            .commit(&card.value, card.version, None, Vec::new())
            .await?
            != Cas::Applied
        {
            return Ok(false);
        }
        self.store
            .index_release(Index::Purchase, purchase_id, owner)
            .await?;
        Ok(true)
    }

    /// May `number` use a PurchaseId that `claim` holds? Only if the claim
    /// is this card's and still within the retention: on another card it
    /// is a conflict, and so is an expired one (its outcome is gone, and
    /// applying it again would count the purchase twice).
    pub(super) fn judge_purchase_claim(
        &self,
        claim: &Claim,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        let retention_ms =
            i64::try_from(self.settings.purchases.retention_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
        if record_of(&claim.owner) != number.as_str() {
            return Err(RuleError::new(
                ErrorKey::IdempotencyConflict,
                "PurchaseId was already used with another card",
            )
            .into());
        }
        if claim.age_ms > retention_ms {
            return Err(RuleError::new(
                ErrorKey::IdempotencyConflict,
                "PurchaseId was used longer ago than its outcome is kept: it cannot be applied again",
            )
            .into());
        }
        Ok(())
    }

    /// The PurchaseId's current claim, read with the card until this
    /// request holds the claim itself.
    pub(super) async fn purchase_claim(
        &self,
        purchase_id: &str,
        held: bool,
    ) -> Result<Option<Claim>, EngineError> {
        if held {
            return Ok(None);
        }
        Ok(self.store.index_get(Index::Purchase, purchase_id).await?)
    }

    pub(super) async fn stored<T: Kept>(
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
    async fn read_with<T: Kept>(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Versioned<Card>, Option<(Stored<T>, Option<i64>)>), EngineError> {
        let (card, record) = self.store.get_card_with_record(number, key).await?;
        let card = card.ok_or_else(|| super::ops::not_found_card(number))?;
        let stored = match record {
            Some(r) => Some((T::decode(key, &r.value)?, r.ttl_ms)),
            None => None,
        };
        Ok((card, stored))
    }

    /// Writes the card and the records, or reports that a concurrent writer
    /// came first — a newer card version, or the operation's outcome stored
    /// already (the caller then reads again and finds that outcome).
    pub(super) async fn commit(
        &self,
        next: &Card,
        version: u64,
        entry: Option<&HistoryEntry>,
        records: Vec<CardRecordWrite>,
    ) -> Result<Cas, EngineError> {
        let since = self.store.continuity();
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
            self.last_seen.wrote(next, version, &written, since);
        }
        Ok(cas)
    }

    pub(crate) async fn calculate(
        &self,
        number: &CardNumber,
        amount: Amount,
        bonus_to_pay: Amount,
    ) -> Result<Calculated, EngineError> {
        // A quote, not a write: confirm decides again on a fresh read.
        let mut card = self
            .settled(self.load_card_cached(number).await?)
            .await?
            .value;
        card.free_expired_holds(self.clock.now());
        let rules = &self.settings.purchases.rules;
        let today = self.clock.today();
        let c = purchase::calculate(rules, &card, amount, bonus_to_pay, today);
        Ok(Calculated {
            accrual: c.accrual,
            max_bonus_to_pay: c.max_bonus_to_pay,
            discount_bp: c.discount_bp,
            // The very checks confirm runs on the same fields.
            refusal: purchase::check(rules, &card, amount, bonus_to_pay, today).err(),
        })
    }

    pub(crate) async fn confirm(&self, r: &ConfirmRequest) -> Result<Confirmed, EngineError> {
        let key = purchase_key(&r.purchase_id);
        let fingerprint = purchase_fingerprint(
            &r.number,
            r.amount,
            r.bonus_to_pay,
            &r.date.map(|d| d.to_string()).unwrap_or_default(),
        );
        // One write on the card as this instance last saw it (or as the
        // store's cache has it): the store checks, in the same step, that
        // no outcome is stored, that the PurchaseId is free and that the
        // card is still at that version. A lost compare-and-set hands back
        // the card as it is now, to decide again on.
        let mut base = self.write_base(&r.number).await?;
        let mine = new_owner(self.instance, r.number.as_str());
        // The claim this request holds (a cluster claims before the card's
        // write, which may then lose its compare-and-set).
        let mut held: Option<String> = None;
        for _ in 0..MAX_ATTEMPTS {
            // Gone, mid-replacement or refused: those answers are decided on
            // a fresh read, with the stored outcome and the claim beside it.
            let Some(card) = base.take() else { break };
            if card.value.unfinished_replacement().is_some() {
                break;
            }
            let Ok(p) = self.purchase_on(r, &card.value, &fingerprint) else {
                break;
            };
            let outcome = CardRecordWrite::outcome(key.clone(), Confirmed::encode(&p.stored));
            let write = PurchaseWrite {
                card: &p.next,
                expected_version: card.version,
                entry: &p.entry,
                outcome: &outcome,
                ttl_secs: self.settings.purchases.retention_secs,
                purchase_id: &r.purchase_id,
                // A hold of this PurchaseId took its claim under the
                // token it keeps: the confirm takes it over in its write.
                claim_expected: held
                    .as_deref()
                    .or_else(|| super::holds::claim_of(&card.value, &r.purchase_id)),
                owner: &mine,
            };
            let since = self.store.continuity();
            match self.store.commit_purchase(&write).await? {
                PurchaseCommit::Applied => {
                    self.last_seen
                        .wrote(&p.next, card.version, &[(&key, &outcome.value)], since);
                    p.holds.count();
                    return Ok(confirmed(p.stored.outcome));
                }
                PurchaseCommit::Stored(stored) => {
                    let stored = Confirmed::decode(&key, &stored.value)?;
                    return replay(stored, &fingerprint, "PurchaseId");
                }
                // Another attempt's claim (or another card's): judged on
                // the read below.
                PurchaseCommit::Claimed(_) => break,
                PurchaseCommit::Conflict {
                    current,
                    claim_held,
                } => {
                    if claim_held {
                        held = Some(mine.clone());
                    }
                    if let Some(current) = &current {
                        self.last_seen.saw(current, since);
                    }
                    base = current.map(|c| *c);
                }
            }
        }
        self.confirm_on_read(r, &key, &fingerprint, held).await
    }

    /// What a confirm does to `card` if the rules accept it: the next card,
    /// its history entry and the outcome to store.
    fn purchase_on(
        &self,
        r: &ConfirmRequest,
        card: &Card,
        fingerprint: &str,
    ) -> Result<Prepared, RuleError> {
        let rules = &self.settings.purchases.rules;
        let now = self.clock.now();
        let today = now.date();
        let date = r.date.unwrap_or(today);
        let mut next = card.clone();
        let expired = next.free_expired_holds(now);
        next.ledger.compact(today);
        if let Some(date) = r.date {
            purchase::check_date(rules, date, now)?;
        }
        // Its own hold, if open, is written off from (issue 24).
        let (record, holds) = super::holds::confirm_on(rules, &mut next, r, date, now, expired)?;
        let (active_from, expires) = purchase::accrual_dates(rules, date);
        let outcome = Confirmed {
            number: r.number.clone(),
            purchase_id: r.purchase_id.clone(),
            amount: r.amount,
            bonus_to_pay: r.bonus_to_pay,
            accrual: record.accrual,
            accrual_active_from: active_from,
            accrual_expire_date: expires,
            discount_bp: purchase::calculate(rules, card, r.amount, r.bonus_to_pay, today)
                .discount_bp,
        };
        let movement = BonusMovement {
            reference: r.purchase_id.clone(),
            credited: record.accrual,
            debited: record.bonus_paid,
            money: Some(r.amount),
            comment: None,
            debt: None,
        };
        let mut entry = bonus_entry(now, &next, &r.actor, Operation::Purchase, movement);
        note_debt(&mut entry, card, &next);
        Ok(Prepared {
            next,
            entry,
            stored: Stored {
                fingerprint: fingerprint.to_owned(),
                outcome,
                purchase: Some(record),
                reversals: Vec::new(),
            },
            holds,
        })
    }

    /// Confirm on a fresh read of the card, its stored outcome and the
    /// PurchaseId's claim (the rare paths: a card not seen before whose
    /// store cache missed, a refusal, another attempt's claim, a
    /// replacement to finish). `owner`: the claim this request holds
    /// already, if any.
    async fn confirm_on_read(
        &self,
        r: &ConfirmRequest,
        key: &str,
        fingerprint: &str,
        mut owner: Option<String>,
    ) -> Result<Confirmed, EngineError> {
        // The PurchaseId is bound to the card only once the rules accepted
        // the purchase: a refused confirm leaves it free for another card.
        for _ in 0..MAX_ATTEMPTS {
            // Independent reads: sent together, they share a round trip.
            // The card and its stored outcome come in one read, so that the
            // outcome is the one that goes with the card's version.
            let since = self.store.continuity();
            let (read, claim) = futures_util::join!(
                self.store.get_card_with_record(&r.number, key),
                self.purchase_claim(&r.purchase_id, owner.is_some()),
            );
            let (card, stored) = read?;
            // The idempotency check comes first, before any lookup or rule
            // (docs/api.md §7): a replay answers as the first time did, and a
            // PurchaseId taken by another card is a conflict whatever this
            // card's state.
            if let Some(stored) = stored {
                let stored = Confirmed::decode(key, &stored.value)?;
                return self
                    .replicated(&r.number, replay(stored, fingerprint, "PurchaseId"))
                    .await;
            }
            if let Some(claim) = claim? {
                self.judge_purchase_claim(&claim, &r.number)?;
            }
            let card = card.ok_or_else(|| super::ops::not_found_card(&r.number))?;
            self.last_seen.saw(&card, since);
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            let p = match self.purchase_on(r, &card.value, fingerprint) {
                Ok(p) => p,
                // Refused on a read after this request claimed the id (its
                // first write lost a race): give the claim back.
                Err(refusal) if owner.is_some() => {
                    let held = owner.as_deref().unwrap_or_default();
                    if self.release_purchase(&r.purchase_id, held, &card).await? {
                        return Err(refusal.into());
                    }
                    continue;
                }
                // The card we read may already carry this very purchase,
                // applied by a twin of this request after our outcome read
                // (its write-off then leaves too little for ours): answer
                // what the twin answered, not a refusal.
                Err(refusal) => {
                    return match self.stored::<Confirmed>(&r.number, key).await? {
                        Some(stored) => {
                            self.replicated(&r.number, replay(stored, fingerprint, "PurchaseId"))
                                .await
                        }
                        None => Err(refusal.into()),
                    }
                }
            };
            owner = Some(
                self.claim_purchase(&r.purchase_id, &r.number, owner.as_deref())
                    .await?,
            );
            if self
                .commit(
                    &p.next,
                    card.version,
                    Some(&p.entry),
                    vec![CardRecordWrite::outcome(
                        key.to_owned(),
                        Confirmed::encode(&p.stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                p.holds.count();
                return Ok(confirmed(p.stored.outcome));
            }
        }
        Err(EngineError::Contention(format!("card {}", r.number)))
    }

    /// Cancels the whole purchase; a second cancel answers like the first.
    pub(crate) async fn cancel(
        &self,
        actor: &Actor,
        number: &CardNumber,
        purchase_id: &str,
    ) -> Result<Reversed, EngineError> {
        self.reverse_purchase(actor, number, purchase_id, Reversing::Cancel)
            .await
    }

    pub(crate) async fn refund(
        &self,
        actor: &Actor,
        number: &CardNumber,
        purchase_id: &str,
        refund_id: &str,
        amount: Amount,
    ) -> Result<Reversed, EngineError> {
        self.reverse_purchase(
            actor,
            number,
            purchase_id,
            Reversing::Refund { refund_id, amount },
        )
        .await
    }

    /// Cancel and refund: find the purchase (following card replacements),
    /// answer a replay from its stored outcome, else reverse on the card that
    /// holds the bonuses now and store the outcome in the same write.
    async fn reverse_purchase(
        &self,
        actor: &Actor,
        number: &CardNumber,
        purchase_id: &str,
        what: Reversing<'_>,
    ) -> Result<Reversed, EngineError> {
        let key = purchase_key(purchase_id);
        let (outcome_key, fingerprint) = match what {
            Reversing::Cancel => (format!("cancel:{purchase_id}"), String::new()),
            // Length-prefixed: ids may contain ':' and must not collide.
            Reversing::Refund { refund_id, amount } => (
                format!("refund:{}:{purchase_id}:{refund_id}", purchase_id.len()),
                amount.to_string(),
            ),
        };
        let job = ReversalOf {
            purchase_id,
            what,
            outcome_key: &outcome_key,
            fingerprint: &fingerprint,
        };
        // First on the write base: the card as this instance last wrote it,
        // with the purchase as that write left it (one round trip). A
        // replay, a refusal, a replaced card or a lost race are decided on
        // the reads below.
        if let Some((card, raw)) = self
            .last_seen
            .get_with(number, &key, self.store.continuity())
        {
            let settled =
                card.value.replaced_by.is_none() && card.value.unfinished_replacement().is_none();
            if let (true, Ok(stored)) = (settled, Confirmed::decode(&key, &raw)) {
                if let Ok(ReversalStep::Apply(w)) =
                    self.reversal_on(actor, &card.value, stored, &job)
                {
                    if self
                        .commit(
                            &w.next,
                            card.version,
                            Some(&w.entry),
                            vec![CardRecordWrite::replace(
                                key.clone(),
                                Confirmed::encode(&w.updated),
                            )],
                        )
                        .await?
                        == Cas::Applied
                    {
                        return Ok(reversal_done(w.outcome));
                    }
                }
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let chain = self.replacement_chain(number, actor).await?;
            let home = chain[chain.len() - 1].clone();
            let (card, stored) = self.read_with::<Confirmed>(&home, &key).await?;
            // The bonuses are not (or no longer) all on this card: it was
            // replaced after the chain was read, or a transfer into it is
            // unfinished. Reversing here would miss them: resolve again.
            if card.value.replaced_by.is_some()
                || self.finish_replacement(&card.value, actor).await?
            {
                continue;
            }
            let Some((stored, _)) = stored else {
                // Confirmed on a card replaced since: copy the purchase here
                // (with its reversals so far), then read again.
                self.copy_purchase_home(&chain, &card, &key, purchase_id)
                    .await?;
                continue;
            };
            let (next, entry, updated, outcome) =
                match self.reversal_on(actor, &card.value, stored, &job)? {
                    // A replay: once the replicas hold what it answers,
                    // as any replay (a first try answered 503 short of
                    // them may have been on another instance;
                    // `replicated.rs`).
                    ReversalStep::Replay(answer) => return self.replicated(&home, answer).await,
                    ReversalStep::Apply(w) => {
                        let w = *w;
                        (w.next, w.entry, w.updated, w.outcome)
                    }
                };
            // Conditional on the card's version, which the purchase was read
            // with; the purchase keeps its expiry and must not have expired.
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::replace(
                        key.clone(),
                        Confirmed::encode(&updated),
                    )],
                )
                .await?
                == Cas::Applied
            {
                return Ok(reversal_done(outcome));
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
    }

    /// What a reversal does to `card`, which holds the purchase `stored`:
    /// the answer of a replay, or the write to make.
    fn reversal_on(
        &self,
        actor: &Actor,
        card: &Card,
        stored: Stored<Confirmed>,
        job: &ReversalOf<'_>,
    ) -> Result<ReversalStep, EngineError> {
        if let Some(done) = stored.reversals.iter().find(|o| o.key == job.outcome_key) {
            return Ok(ReversalStep::Replay(
                if done.fingerprint == job.fingerprint {
                    Ok(done.outcome.clone())
                } else {
                    Err(conflict("RefundId"))
                },
            ));
        }
        let mut record = stored
            .purchase
            .clone()
            .ok_or_else(|| purchase_not_found(job.purchase_id))?;
        let mut next = card.clone();
        next.free_expired_holds(self.clock.now());
        let today = self.clock.today();
        let (reversal, money, reference, operation, refund_id, total) = match job.what {
            Reversing::Cancel => {
                let left = record.amount.saturating_sub(record.refunded);
                let r = purchase::cancel(&mut next, &mut record, today);
                (
                    r,
                    left,
                    job.purchase_id,
                    Operation::Cancel,
                    None,
                    record.amount,
                )
            }
            Reversing::Refund { refund_id, amount } => {
                // The purchase was read with the card's version: a
                // refusal here is the purchase's state, not a race.
                let r = purchase::refund(&mut next, &mut record, amount, today)?;
                (
                    r,
                    amount,
                    refund_id,
                    Operation::Refund,
                    Some(refund_id),
                    record.refunded,
                )
            }
        };
        let outcome = reversed(
            &card.number,
            job.purchase_id,
            refund_id,
            money,
            &reversal,
            total,
        );
        let mut entry = bonus_entry(
            self.clock.now(),
            &next,
            actor,
            operation,
            movement(reference, &reversal, money),
        );
        note_debt(&mut entry, card, &next);
        let mut reversals = stored.reversals.clone();
        reversals.push(ReversalOutcome {
            key: job.outcome_key.to_owned(),
            fingerprint: job.fingerprint.to_owned(),
            outcome: outcome.clone(),
        });
        let updated = Stored {
            purchase: Some(record),
            reversals,
            ..stored
        };
        Ok(ReversalStep::Apply(Box::new(ReversalWrite {
            next,
            entry,
            updated,
            outcome,
        })))
    }

    /// The cards from `first` along `replaced_by` to the current one, with
    /// every replacement on the way completed (its lots delivered), so that
    /// the current card's ledger holds whatever the purchase left.
    async fn replacement_chain(
        &self,
        first: &CardNumber,
        actor: &Actor,
    ) -> Result<Vec<CardNumber>, EngineError> {
        let mut chain = vec![first.clone()];
        loop {
            let card = self.load_card(&chain[chain.len() - 1]).await?.value;
            let Some(next) = card.replaced_by.clone() else {
                return Ok(chain);
            };
            if card.outbox_pending() {
                self.complete_replacement(&card.number, &next, actor)
                    .await?;
            }
            if chain.len() >= MAX_REPLACEMENT_CHAIN || chain.contains(&next) {
                return Err(EngineError::Internal(format!(
                    "replacement chain of card {first} is too long or cyclic"
                )));
            }
            chain.push(next);
        }
    }

    /// An operation's stored outcome on a card that `card` replaced, directly
    /// or along earlier replacements.
    async fn predecessors_outcome<T: Kept>(
        &self,
        card: &Card,
        key: &str,
    ) -> Result<Option<Stored<T>>, EngineError> {
        let mut previous = card.replaces.clone();
        for _ in 0..MAX_REPLACEMENT_CHAIN {
            let Some(number) = previous else {
                return Ok(None);
            };
            if let Some(stored) = self.stored(&number, key).await? {
                return Ok(Some(stored));
            }
            previous = match self.store.get_card(&number).await? {
                Some(c) => c.value.replaces,
                None => None,
            };
        }
        Ok(None)
    }

    /// Copies a purchase's record from the newest earlier card of the chain
    /// that has it onto `home` (the card that holds its bonuses now), with
    /// what is left of its life. Its refunds and cancel come with it, so a
    /// retry of one made before the replacement is answered, not applied.
    async fn copy_purchase_home(
        &self,
        chain: &[CardNumber],
        home: &Versioned<Card>,
        key: &str,
        purchase_id: &str,
    ) -> Result<(), EngineError> {
        for number in chain.iter().rev().skip(1) {
            let (_, record) = self.store.get_card_with_record(number, key).await?;
            let Some(record) = record else {
                continue;
            };
            // A lost race (someone copied or changed it first) is fine: the
            // caller reads again.
            self.commit(
                &home.value,
                home.version,
                None,
                vec![CardRecordWrite::copy(key, record.value, record.ttl_ms)],
            )
            .await?;
            return Ok(());
        }
        Err(purchase_not_found(purchase_id))
    }

    pub(crate) async fn manual_bonus(
        &self,
        r: &ManualBonusRequest,
    ) -> Result<Accrued, EngineError> {
        let key = format!("bonus:{}", r.operation_id);
        let today = self.clock.today();
        let active_from = r.active_from.unwrap_or(today);
        let expire_date = r.expire_date.or_else(|| {
            Some(active_from.saturating_add(time::Duration::days(
                self.settings.purchases.rules.expiry_days,
            )))
        });
        // Dates entirely in the past are refused below, after the
        // idempotency check (a replay answers whatever today is).
        if r.expire_date.is_some_and(|e| e >= today) && expire_date.is_some_and(|e| e < active_from)
        {
            return Err(RuleError::new(
                ErrorKey::InvalidParameter,
                "ExpireDate is before ActiveFrom",
            )
            .into());
        }
        let fingerprint = manual_fingerprint(&r.number, r);
        // First on the write base: one conditional write whose create-only
        // outcome also refuses a replay. A card that replaced another (its
        // predecessors may hold this operation), a refusal or a lost race
        // are decided on the fresh reads below.
        if let Some(card) = self
            .write_base(&r.number)
            .await?
            .filter(|c| c.value.replaces.is_none() && c.value.unfinished_replacement().is_none())
        {
            if let Ok((next, entry, stored)) = self.accrual_on(
                r,
                &card.value,
                active_from,
                expire_date,
                today,
                &fingerprint,
            ) {
                if self
                    .commit(
                        &next,
                        card.version,
                        Some(&entry),
                        vec![CardRecordWrite::outcome(
                            key.clone(),
                            Accrued::encode(&stored),
                        )],
                    )
                    .await?
                    == Cas::Applied
                {
                    m::bonus_amount("manual_accrual", r.amount);
                    return Ok(stored.outcome);
                }
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let (card, stored) = self.read_with::<Accrued>(&r.number, &key).await?;
            if let Some((stored, _)) = stored {
                return self
                    .replicated(&r.number, replay(stored, &fingerprint, "OperationId"))
                    .await;
            }
            // Applied on a card this one replaced, and retried with the new
            // card's number: the same operation. An OperationId's scope is
            // the card (docs/api-decisions.md), and a replacement card is
            // the same customer's card: the request is compared as if sent
            // to the card it was applied on.
            if let Some(stored) = self
                .predecessors_outcome::<Accrued>(&card.value, &key)
                .await?
            {
                let as_sent_there = manual_fingerprint(&stored.outcome.number, r);
                let there = stored.outcome.number.clone();
                return self
                    .replicated(&there, replay(stored, &as_sent_there, "OperationId"))
                    .await;
            }
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            let (next, entry, stored) = self.accrual_on(
                r,
                &card.value,
                active_from,
                expire_date,
                today,
                &fingerprint,
            )?;
            let outcome = stored.outcome.clone();
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::outcome(
                        key.clone(),
                        Accrued::encode(&stored),
                    )],
                )
                .await?
                == Cas::Applied
            {
                m::bonus_amount("manual_accrual", r.amount);
                return Ok(outcome);
            }
        }
        Err(EngineError::Contention(format!("card {}", r.number)))
    }

    /// A manual accrual applied to `card`: the next card, its history entry
    /// and the outcome to store; or the refusal.
    fn accrual_on(
        &self,
        r: &ManualBonusRequest,
        card: &Card,
        active_from: Date,
        expire_date: Option<Date>,
        today: Date,
        fingerprint: &str,
    ) -> Result<(Card, HistoryEntry, Stored<Accrued>), EngineError> {
        refuse_expired_bonus(r, expire_date, today)?;
        purchase::check_status(card, Amount::ZERO)?;
        if Amount::total([card.bonus_total(), r.amount]).is_none() {
            return Err(RuleError::new(
                ErrorKey::InvalidAmount,
                format!(
                    "the card would hold more than {} bonuses, the largest total a balance states exactly",
                    Amount::TOTAL_MAX
                ),
            )
            .into());
        }
        let mut next = card.clone();
        next.free_expired_holds(self.clock.now());
        next.ledger.compact(today);
        next.ledger.accrue(
            r.amount,
            r.bonus_type,
            active_from,
            expire_date,
            LotSource::Bonus,
        );
        next.ledger.settle(today);
        let outcome = Accrued {
            number: r.number.clone(),
            operation_id: r.operation_id.clone(),
            amount: r.amount,
            bonus_type: r.bonus_type,
            active_from,
            expire_date,
        };
        let movement = BonusMovement {
            reference: r.operation_id.clone(),
            credited: r.amount,
            debited: Amount::ZERO,
            money: None,
            comment: r.comment.clone(),
            debt: None,
        };
        let mut entry = bonus_entry(
            self.clock.now(),
            &next,
            &r.actor,
            Operation::Bonus,
            movement,
        );
        note_debt(&mut entry, card, &next);
        let stored = Stored {
            fingerprint: fingerprint.to_owned(),
            outcome: outcome.clone(),
            purchase: None,
            reversals: Vec::new(),
        };
        Ok((next, entry, stored))
    }
}

/// A manual accrual whose bonuses would be Burnt the day they are credited
/// is a mistake (issue 27): it would only inflate the Burnt total.
fn refuse_expired_bonus(
    r: &ManualBonusRequest,
    expire_date: Option<Date>,
    today: Date,
) -> Result<(), RuleError> {
    let Some(expires) = expire_date.filter(|e| *e < today) else {
        return Ok(());
    };
    let message = match (r.expire_date, r.active_from) {
        (Some(_), _) | (None, None) => format!(
            "ExpireDate {expires} is in the past: a manual accrual must be usable at least through today ({today} UTC)"
        ),
        (None, Some(from)) => format!(
            "ActiveFrom {from} is too far back: its bonuses would expire on {expires} (bonus.expiry_days later), before today ({today} UTC)"
        ),
    };
    Err(RuleError::new(ErrorKey::InvalidParameter, message))
}

/// What a manual accrual's replay must match: the request's fields, with
/// the number of the card it is compared on.
fn manual_fingerprint(number: &CardNumber, r: &ManualBonusRequest) -> String {
    format!(
        "{}|{}|{}|{:?}|{:?}|{:?}",
        number,
        r.amount,
        r.bonus_type.code(),
        r.active_from,
        r.expire_date,
        r.comment
    )
}

pub(super) fn replay<T>(
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

fn reversed(
    number: &CardNumber,
    purchase_id: &str,
    refund_id: Option<&str>,
    amount: Amount,
    r: &Reversal,
    refunded_total: Amount,
) -> Reversed {
    Reversed {
        number: number.clone(),
        purchase_id: purchase_id.to_owned(),
        refund_id: refund_id.map(str::to_owned),
        amount,
        accrual_reversed: r.accrual_reversed,
        bonus_returned: r.bonus_returned,
        uncovered: r.uncovered,
        refunded_total,
    }
}

fn movement(reference: &str, r: &Reversal, money: Amount) -> BonusMovement {
    BonusMovement {
        reference: reference.to_owned(),
        credited: r.bonus_returned,
        debited: r.accrual_reversed.saturating_sub(r.uncovered),
        money: Some(money),
        comment: None,
        debt: None,
    }
}
