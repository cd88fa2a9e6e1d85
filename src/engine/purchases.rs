//! The purchase family: calculate, confirm, cancel and refund, exactly
//! once. A purchase's outcome is stored under its PurchaseId in the card's
//! own key space, written in the same atomic step as the ledger change: a
//! crash loses both or neither, and a replay finds the stored outcome
//! instead of applying twice. Cancel and refund follow the purchase along
//! card replacements to the card that holds its bonuses now.

use super::claimed_write::{purchase_key, Bound, ClaimedWrite, Step};
use super::claims::{new_owner, record_of};
use super::context::Ops;
use super::error::EngineError;
use super::holds::{claim_of, ClaimKeeper, HoldEffect};
use super::kept::{purchase_fingerprint, Kept, ReversalOutcome, Stored};
use super::support::{bonus_entry, conflict, MAX_ATTEMPTS};
use super::types::{Calculated, ConfirmRequest, Confirmed, Reversed};
use crate::domain::history::note_debt;
use crate::domain::purchase::{self, Reversal};
use crate::domain::{
    Actor, Amount, BonusMovement, Card, CardNumber, ErrorKey, HistoryEntry, Operation, RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, Claim, Index, RecordRead, Versioned};

/// Which reversal of a purchase.
#[derive(Debug, Clone, Copy)]
enum Reversing<'a> {
    Cancel,
    Refund { refund_id: &'a str, amount: Amount },
}

/// A confirm as the write loop runs it (`claimed_write.rs`).
impl ClaimedWrite for ConfirmRequest {
    type Outcome = Confirmed;
    /// What the confirm did to holds (counted once it lands).
    type Effect = HoldEffect;
    /// Its outcome is the purchase's record.
    const READS_APART: bool = false;

    /// A hold of this PurchaseId took its claim under the token it keeps:
    /// the confirm takes it over in its write.
    fn takes_over<'c>(&self, card: &'c Card) -> Option<&'c str> {
        claim_of(card, &self.purchase_id)
    }

    fn prepare(
        &self,
        ops: &Ops,
        card: &Card,
        fingerprint: &str,
        _owner: &str,
    ) -> Result<Step<Confirmed, HoldEffect>, RuleError> {
        ops.purchase_on(self, card, fingerprint)
    }

    fn landed(step: Step<Confirmed, HoldEffect>) -> Confirmed {
        step.effect.count();
        confirmed(step.stored.outcome)
    }

    fn kept(
        &self,
        key: &str,
        purchase: Option<RecordRead>,
        _apart: Option<Stored<Confirmed>>,
    ) -> Result<Option<Stored<Confirmed>>, EngineError> {
        purchase
            .map(|r| Confirmed::decode(key, &r.value))
            .transpose()
    }
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

fn purchase_not_found(purchase_id: &str) -> EngineError {
    RuleError::new(
        ErrorKey::PurchaseNotFound,
        format!("no purchase with the id {purchase_id:?}"),
    )
    .into()
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
    /// so the id stays free for another card — unless the card keeps
    /// something of it, a hold open or over (`claim_keeper`): then it
    /// stays bound to the card. The card is first rewritten
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
        match self.claim_keeper(&card.value, purchase_id).await? {
            // A hold of this PurchaseId on the card bound it before this
            // request took the claim over (on a cluster the claim is taken
            // before the card's compare-and-set fails): the claim goes back
            // to the hold's token, as its confirm expects it, never free —
            // freed, another card could take the held PurchaseId. A claim a
            // twin took over meanwhile stays: bound to this card all along.
            ClaimKeeper::Hold(hold_owner) => {
                let _bound_still = self
                    .store
                    .index_claim(Index::Purchase, purchase_id, Some(owner), hold_owner)
                    .await?;
            }
            // A hold of it that is over left its answers on the card: the
            // claim stays bound, under this request's token (the card's).
            ClaimKeeper::Card => {}
            ClaimKeeper::Nobody => {
                self.store
                    .index_release(Index::Purchase, purchase_id, owner)
                    .await?;
            }
        }
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
        let fingerprint = purchase_fingerprint(
            &r.number,
            r.amount,
            r.bonus_to_pay,
            &r.date.map(|d| d.to_string()).unwrap_or_default(),
        );
        let bound = Bound {
            number: &r.number,
            purchase_id: &r.purchase_id,
            actor: &r.actor,
            key: purchase_key(&r.purchase_id),
            fingerprint,
        };
        self.claimed_write(r, &bound).await
    }

    /// What a confirm does to `card` if the rules accept it: the next card,
    /// its history entry and the outcome to store.
    fn purchase_on(
        &self,
        r: &ConfirmRequest,
        card: &Card,
        fingerprint: &str,
    ) -> Result<Step<Confirmed, HoldEffect>, RuleError> {
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
        Ok(Step {
            next,
            entry,
            stored: Stored {
                fingerprint: fingerprint.to_owned(),
                outcome,
                purchase: Some(record),
                reversals: Vec::new(),
            },
            effect: holds,
        })
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
        if let Some((card, raw)) = self.owned.get_with(number, &key, self.continuity()) {
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
