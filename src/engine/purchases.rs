//! Purchases and manual accruals, exactly once. Each operation's outcome is
//! stored under its idempotency key in the card's own key space, written in
//! the same atomic step as the ledger change: a crash loses both or neither,
//! and a replay finds the stored outcome instead of applying twice.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::claims::{new_owner, record_of};
use super::error::EngineError;
use super::ops::{Ops, MAX_ATTEMPTS};
use crate::domain::purchase::{self, BonusRules, PurchaseRecord, Reversal};
use crate::domain::{
    Actor, Amount, BonusMovement, BonusType, Card, CardNumber, ErrorKey, HistoryEntry, Operation,
    RuleError,
};
use crate::metrics as m;
use crate::store::{CardRecordWrite, Cas, Claim, Index, Versioned};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseSettings {
    pub rules: BonusRules,
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
    pub number: CardNumber,
    pub purchase_id: String,
    pub amount: Amount,
    pub bonus_to_pay: Amount,
    pub accrual: Amount,
    pub accrual_active_from: Date,
    pub accrual_expire_date: Date,
    pub discount_bp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reversed {
    pub number: CardNumber,
    pub purchase_id: String,
    pub refund_id: Option<String>,
    /// Money refunded by this operation (the whole purchase for a cancel).
    pub amount: Amount,
    pub accrual_reversed: Amount,
    pub bonus_returned: Amount,
    pub uncovered: Amount,
    pub refunded_total: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accrued {
    pub number: CardNumber,
    pub operation_id: String,
    pub amount: Amount,
    pub bonus_type: BonusType,
    pub active_from: Date,
    pub expire_date: Option<Date>,
}

/// Which reversal of a purchase.
#[derive(Debug, Clone, Copy)]
enum Reversing<'a> {
    Cancel,
    Refund { refund_id: &'a str, amount: Amount },
}

/// What is kept under an idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored<T> {
    /// The request's meaningful fields: a replay must match them.
    fingerprint: String,
    outcome: T,
    #[serde(default)]
    purchase: Option<PurchaseRecord>,
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

/// Replacements followed from a purchase's card to the current one.
const MAX_REPLACEMENT_CHAIN: usize = 16;

pub(crate) fn purchase_key(purchase_id: &str) -> String {
    format!("purchase:{purchase_id}")
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn conflict(what: &str) -> EngineError {
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

fn bonus_entry(
    card: &Card,
    actor: &Actor,
    operation: Operation,
    movement: BonusMovement,
) -> HistoryEntry {
    HistoryEntry {
        at: OffsetDateTime::now_utc(),
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
    /// Binds a PurchaseId to its card, once and for good: cancel and refund
    /// name only the purchase. The same id on another card is a conflict.
    /// An id bound longer ago than the retention whose outcome is gone has
    /// expired: applying it again would count the purchase twice.
    async fn claim_purchase(
        &self,
        purchase_id: &str,
        number: &CardNumber,
    ) -> Result<(), EngineError> {
        // Claim first: one round trip when the id is new (the usual case);
        // a refusal hands back the current claim to judge.
        for _ in 0..MAX_ATTEMPTS {
            let owner = new_owner(self.instance, number.as_str());
            match self
                .store
                .index_claim(Index::Purchase, purchase_id, None, &owner)
                .await?
            {
                Ok(()) => return Ok(()),
                Err(Some(claim)) => return self.judge_purchase_claim(&claim, number),
                // Released between our attempt and its answer: try again.
                Err(None) => {}
            }
        }
        Err(EngineError::Contention(format!("purchase {purchase_id}")))
    }

    /// May `number` use a PurchaseId that `claim` holds? Only if the claim
    /// is this card's and still within the retention: on another card it
    /// is a conflict, and so is an expired one (its outcome is gone, and
    /// applying it again would count the purchase twice).
    fn judge_purchase_claim(&self, claim: &Claim, number: &CardNumber) -> Result<(), EngineError> {
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
    async fn purchase_claim(
        &self,
        purchase_id: &str,
        held: bool,
    ) -> Result<Option<Claim>, EngineError> {
        if held {
            return Ok(None);
        }
        Ok(self.store.index_get(Index::Purchase, purchase_id).await?)
    }

    async fn stored<T: DeserializeOwned>(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<Stored<T>>, EngineError> {
        let Some(raw) = self.store.get_card_record(number, key).await? else {
            return Ok(None);
        };
        serde_json::from_str(&raw).map(Some).map_err(|e| {
            EngineError::Store(crate::store::StoreError::Corrupt {
                key: key.to_owned(),
                reason: e.to_string(),
            })
        })
    }

    /// Writes the card and the records, or reports that a concurrent writer
    /// came first — a newer card version, or the operation's outcome stored
    /// already (the caller then reads again and finds that outcome).
    async fn commit(
        &self,
        next: &Card,
        version: u64,
        entry: Option<&HistoryEntry>,
        records: Vec<CardRecordWrite>,
    ) -> Result<Cas, EngineError> {
        Ok(self
            .store
            .update_card_with(
                next,
                version,
                entry,
                &records,
                self.settings.purchases.retention_secs,
            )
            .await?)
    }

    pub(crate) async fn calculate(
        &self,
        number: &CardNumber,
        amount: Amount,
        bonus_to_pay: Amount,
    ) -> Result<Calculated, EngineError> {
        let card = self.settled(self.load_card(number).await?).await?.value;
        let rules = &self.settings.purchases.rules;
        let today = today();
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
        let fingerprint = format!(
            "{}|{}|{}|{}",
            r.number,
            r.amount,
            r.bonus_to_pay,
            r.date.map(|d| d.to_string()).unwrap_or_default()
        );
        let rules = &self.settings.purchases.rules;
        // The PurchaseId is bound to the card only once the rules accepted
        // the purchase: a refused confirm leaves it free for another card.
        let mut claimed = false;
        for _ in 0..MAX_ATTEMPTS {
            // Independent reads: sent together, they share a round trip.
            let (card, stored, claim) = futures_util::join!(
                self.load_card(&r.number),
                self.stored::<Confirmed>(&r.number, &key),
                self.purchase_claim(&r.purchase_id, claimed),
            );
            // The idempotency check comes first, before any lookup or rule
            // (API.md §7): a replay answers as the first time did, and a
            // PurchaseId taken by another card is a conflict whatever this
            // card's state.
            if let Some(stored) = stored? {
                return replay(stored, &fingerprint, "PurchaseId");
            }
            if let Some(claim) = claim? {
                self.judge_purchase_claim(&claim, &r.number)?;
            }
            let card = card?;
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            let now = OffsetDateTime::now_utc();
            let today = now.date();
            if let Some(date) = r.date {
                purchase::check_date(rules, date, now)?;
            }
            let date = r.date.unwrap_or(today);
            let mut next = card.value.clone();
            next.ledger.compact(today);
            let record = purchase::confirm(
                rules,
                &mut next,
                &key,
                r.amount,
                r.bonus_to_pay,
                date,
                today,
            )?;
            if !claimed {
                self.claim_purchase(&r.purchase_id, &r.number).await?;
                claimed = true;
            }
            let (active_from, expires) = purchase::accrual_dates(rules, date);
            let outcome = Confirmed {
                number: r.number.clone(),
                purchase_id: r.purchase_id.clone(),
                amount: r.amount,
                bonus_to_pay: r.bonus_to_pay,
                accrual: record.accrual,
                accrual_active_from: active_from,
                accrual_expire_date: expires,
                discount_bp: purchase::calculate(
                    rules,
                    &card.value,
                    r.amount,
                    r.bonus_to_pay,
                    today,
                )
                .discount_bp,
            };
            let movement = BonusMovement {
                reference: r.purchase_id.clone(),
                credited: record.accrual,
                debited: record.bonus_paid,
                money: Some(r.amount),
                comment: None,
            };
            let entry = bonus_entry(&next, &r.actor, Operation::Purchase, movement);
            let stored = Stored {
                fingerprint: fingerprint.clone(),
                outcome: outcome.clone(),
                purchase: Some(record),
            };
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::outcome(key.clone(), to_json(&stored))],
                )
                .await?
                == Cas::Applied
            {
                m::bonus_amount("accrual", outcome.accrual);
                m::bonus_amount("write_off", outcome.bonus_to_pay);
                return Ok(outcome);
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
        for _ in 0..MAX_ATTEMPTS {
            let chain = self.replacement_chain(number, actor).await?;
            if let Some(stored) = self.find_outcome::<Reversed>(&chain, &outcome_key).await? {
                return replay(stored, &fingerprint, "RefundId");
            }
            let Some((home, card, stored, mut record)) =
                self.purchase_at_home(&chain, &key, purchase_id).await?
            else {
                continue;
            };
            // The bonuses are not (or no longer) all on this card: it was
            // replaced after the chain was read, or a transfer into it is
            // unfinished. Reversing here would miss them: resolve again.
            if card.value.replaced_by.is_some()
                || self.finish_replacement(&card.value, actor).await?
            {
                continue;
            }
            let mut next = card.value.clone();
            let today = today();
            let (reversal, money, reference, operation, refund_id, total) = match what {
                Reversing::Cancel => {
                    let left = record.amount.saturating_sub(record.refunded);
                    let r = purchase::cancel(&mut next, &mut record, &outcome_key, today);
                    (r, left, purchase_id, Operation::Cancel, None, record.amount)
                }
                Reversing::Refund { refund_id, amount } => {
                    let r = purchase::refund(&mut next, &mut record, amount, &outcome_key, today)?;
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
            let outcome = reversed(&home, purchase_id, refund_id, money, &reversal, total);
            let entry = bonus_entry(
                &next,
                actor,
                operation,
                movement(reference, &reversal, money),
            );
            let records = vec![
                CardRecordWrite::replace(
                    key.clone(),
                    to_json(&Stored {
                        purchase: Some(record),
                        ..stored
                    }),
                ),
                CardRecordWrite::outcome(
                    outcome_key.clone(),
                    to_json(&Stored {
                        fingerprint: fingerprint.clone(),
                        outcome: outcome.clone(),
                        purchase: None,
                    }),
                ),
            ];
            if self
                .commit(&next, card.version, Some(&entry), records)
                .await?
                == Cas::Applied
            {
                m::bonus_amount("accrual_reversed", outcome.accrual_reversed);
                m::bonus_amount("write_off_returned", outcome.bonus_returned);
                return Ok(outcome);
            }
        }
        Err(EngineError::Contention(format!("card {number}")))
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
            if !card.transfer_out.is_empty() {
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

    /// An operation's stored outcome on any card of the chain (it was
    /// recorded on the card that was current then).
    async fn find_outcome<T: DeserializeOwned>(
        &self,
        chain: &[CardNumber],
        key: &str,
    ) -> Result<Option<Stored<T>>, EngineError> {
        for number in chain.iter().rev() {
            if let Some(stored) = self.stored(number, key).await? {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }

    /// The purchase's record on the current card of the chain, copied there
    /// (newest copy first) when the purchase's card has been replaced since:
    /// its reversal must change the ledger that now holds its bonuses.
    /// `None`: the copy lost a race; read again.
    async fn purchase_at_home(
        &self,
        chain: &[CardNumber],
        key: &str,
        purchase_id: &str,
    ) -> Result<
        Option<(
            CardNumber,
            Versioned<Card>,
            Stored<Confirmed>,
            PurchaseRecord,
        )>,
        EngineError,
    > {
        let home = chain[chain.len() - 1].clone();
        let card = self.load_card(&home).await?;
        if let Some(stored) = self.stored::<Confirmed>(&home, key).await? {
            let record = stored
                .purchase
                .clone()
                .ok_or_else(|| purchase_not_found(purchase_id))?;
            return Ok(Some((home, card, stored, record)));
        }
        for number in chain.iter().rev().skip(1) {
            if let Some(stored) = self.stored::<Confirmed>(number, key).await? {
                // Create-only: a copy made meanwhile (and perhaps refunded
                // since) is never overwritten with the older one.
                self.commit(
                    &card.value,
                    card.version,
                    None,
                    vec![CardRecordWrite::outcome(key, to_json(&stored))],
                )
                .await?;
                return Ok(None);
            }
        }
        Err(purchase_not_found(purchase_id))
    }

    pub(crate) async fn manual_bonus(
        &self,
        r: &ManualBonusRequest,
    ) -> Result<Accrued, EngineError> {
        let key = format!("bonus:{}", r.operation_id);
        let today = today();
        let active_from = r.active_from.unwrap_or(today);
        let expire_date = r.expire_date.or_else(|| {
            Some(active_from.saturating_add(time::Duration::days(
                self.settings.purchases.rules.expiry_days,
            )))
        });
        if expire_date.is_some_and(|e| e < active_from) {
            return Err(RuleError::new(
                ErrorKey::InvalidParameter,
                "ExpireDate is before ActiveFrom",
            )
            .into());
        }
        let fingerprint = format!(
            "{}|{}|{}|{:?}|{:?}|{:?}",
            r.number,
            r.amount,
            r.bonus_type.code(),
            r.active_from,
            r.expire_date,
            r.comment
        );
        for _ in 0..MAX_ATTEMPTS {
            let (card, stored) = futures_util::try_join!(
                self.load_card(&r.number),
                self.stored::<Accrued>(&r.number, &key)
            )?;
            if let Some(stored) = stored {
                return replay(stored, &fingerprint, "OperationId");
            }
            if self.finish_replacement(&card.value, &r.actor).await? {
                continue;
            }
            purchase::check_status(&card.value, Amount::ZERO)?;
            let mut next = card.value.clone();
            next.ledger.compact(today);
            next.ledger
                .accrue(r.amount, r.bonus_type, active_from, expire_date, &key);
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
            };
            let entry = bonus_entry(&next, &r.actor, Operation::Bonus, movement);
            let stored = Stored {
                fingerprint: fingerprint.clone(),
                outcome: outcome.clone(),
                purchase: None,
            };
            if self
                .commit(
                    &next,
                    card.version,
                    Some(&entry),
                    vec![CardRecordWrite::outcome(key.clone(), to_json(&stored))],
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
}

fn replay<T>(stored: Stored<T>, fingerprint: &str, what: &str) -> Result<T, EngineError> {
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
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data (strings, integers, dates) always serializes")
}
