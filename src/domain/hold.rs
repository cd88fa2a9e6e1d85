//! Holds (issue 24): a purchase's write-off reserved while the customer
//! pays, then confirmed or released. Pure rules, as the rest of the domain:
//! the time comes in as a parameter.
//!
//! A hold lives in its card's record (`Card::holds`), so that taking,
//! confirming and releasing it are each one conditional write of the card:
//! nothing can drift between the card and a second key. Its bonuses leave
//! the Active lots when it is taken (nearest expiry first, the order a
//! confirm takes them in) and are kept in the hold as lots, each with its
//! lot's dates and source, so that a release merges them back into the very
//! lots they came from. An expired hold (its `until` passed) counts as
//! freed as of any later time, whether or not anything wrote the card
//! since: every reader first frees the expired holds of its copy
//! (`Card::free_expired_holds`).

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::card::Card;
use super::error::{ErrorKey, RuleError};
use super::ledger::{Allocation, Bucket, Ledger, Lot};
use super::money::Amount;
use super::purchase::{self, BonusRules, Calculation, PurchaseRecord};
use super::reference::{BonusStatus, BonusType};

// The field order is the stored encoding's (a positional MessagePack array,
// src/store/codec.rs): add fields at the end only, with a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub purchase_id: String,
    /// The owner token under which the hold claimed its PurchaseId: the
    /// confirm that consumes the hold takes the claim over by this token,
    /// in its one write (compare-and-swap), on whichever instance it runs.
    pub owner: String,
    /// The purchase's money amount the hold was taken for.
    pub amount: Amount,
    /// `BonusToPay` of the hold: what it reserves.
    pub bonus: Amount,
    /// The reserved bonuses, as parts of their lots (all Active when taken).
    pub lots: Vec<Lot>,
    /// When the reservation ends by itself.
    #[serde(with = "super::compact::timestamp")]
    pub until: OffsetDateTime,
}

impl Hold {
    /// Still reserving as of `now`?
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        now < self.until
    }

    /// What it reserves (its lots' sum; equal to `bonus`).
    pub fn held(&self) -> Amount {
        Amount::total(self.lots.iter().map(|l| l.amount)).unwrap_or(Amount::TOTAL_MAX)
    }

    /// Does a confirm of `amount` paying `bonus_to_pay` consume this hold
    /// (issue 24, item 2)? Same Amount, and no more than is held. (The
    /// Number is the same by construction: the hold is in that card.)
    pub fn covers(&self, amount: Amount, bonus_to_pay: Amount) -> bool {
        self.amount == amount && bonus_to_pay <= self.bonus
    }
}

/// A hold taken: what a calculate would answer, and the hold's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub calculation: Calculation,
    pub until: OffsetDateTime,
}

impl Card {
    /// The hold of `purchase_id` still open as of `now`.
    pub fn open_hold(&self, purchase_id: &str, now: OffsetDateTime) -> Option<&Hold> {
        self.holds
            .iter()
            .find(|h| h.purchase_id == purchase_id && h.is_open(now))
    }

    /// Bonuses reserved by holds open as of `now`.
    pub fn held(&self, now: OffsetDateTime) -> Amount {
        Amount::total(self.holds.iter().filter(|h| h.is_open(now)).map(Hold::held))
            .unwrap_or(Amount::TOTAL_MAX)
    }

    /// Gives back the bonuses of every hold expired as of `now` (they count
    /// as freed from `until` on, whatever has run since) and returns those
    /// holds. Run on any copy of the card before its ledger is read.
    pub fn free_expired_holds(&mut self, now: OffsetDateTime) -> Vec<Hold> {
        let (expired, open): (Vec<Hold>, Vec<Hold>) = std::mem::take(&mut self.holds)
            .into_iter()
            .partition(|h| !h.is_open(now));
        self.holds = open;
        for h in &expired {
            self.ledger.unreserve(h.lots.clone());
        }
        expired
    }

    /// Removes the hold of `purchase_id` (open or not) and gives its
    /// bonuses back to their lots.
    pub fn release_hold(&mut self, purchase_id: &str) -> Option<Hold> {
        let at = self
            .holds
            .iter()
            .position(|h| h.purchase_id == purchase_id)?;
        let hold = self.holds.remove(at);
        self.ledger.unreserve(hold.lots.clone());
        Some(hold)
    }

    /// Releases every hold (a block: no purchase can be confirmed on a
    /// blocked card, so its reservations end with the block).
    pub fn release_all_holds(&mut self) -> Vec<Hold> {
        let holds = std::mem::take(&mut self.holds);
        for h in &holds {
            self.ledger.unreserve(h.lots.clone());
        }
        holds
    }

    /// The balance of §5.1 as of `now`: the ledger's buckets with the
    /// holds expired by then given back, and a Held bucket per type for
    /// the open ones. `frozen`: the card is Blocked (it holds no holds).
    pub fn buckets(&self, now: OffsetDateTime, frozen: bool) -> Vec<Bucket> {
        let mut card = self.clone();
        card.free_expired_holds(now);
        let mut out = card.ledger.buckets(now.date(), frozen);
        for bonus_type in BonusType::ALL.iter().copied() {
            let held = Amount::total(
                card.holds
                    .iter()
                    .flat_map(|h| &h.lots)
                    .filter(|l| l.bonus_type == bonus_type)
                    .map(|l| l.amount),
            )
            .unwrap_or(Amount::TOTAL_MAX);
            if held > Amount::ZERO {
                out.push(Bucket {
                    status: BonusStatus::Held,
                    bonus_type,
                    amount: held,
                    expire_date: None,
                });
            }
        }
        out
    }

    /// Everything the card holds, has held, owes or has reserved: what a
    /// credit must not take past `Amount::TOTAL_MAX` (`Ledger::total`
    /// plus the holds, whose bonuses are out of the ledger while held).
    pub fn bonus_total(&self) -> Amount {
        Amount::total(
            [self.ledger.total()]
                .into_iter()
                .chain(self.holds.iter().map(Hold::held)),
        )
        .unwrap_or(Amount::TOTAL_MAX)
    }
}

/// The most holds a card may have open at once (expired ones do not count:
/// they are freed before a hold is taken).
pub const MAX_OPEN_HOLDS: usize = 16;

/// Takes a hold on `card` (its expired holds freed first by the caller):
/// every check of confirm, in confirm's order, then `bonus_to_pay` is
/// reserved from the Active lots. `until` is when it ends by itself.
/// A card holds at most one hold per PurchaseId (and at most
/// [`MAX_OPEN_HOLDS`]): the caller answers a second hold of the same id
/// from the first one's stored outcome.
#[allow(clippy::too_many_arguments)]
pub fn hold(
    rules: &BonusRules,
    card: &mut Card,
    purchase_id: &str,
    owner: &str,
    amount: Amount,
    bonus_to_pay: Amount,
    until: OffsetDateTime,
    today: Date,
) -> Result<Taken, RuleError> {
    let calculation = purchase::check(rules, card, amount, bonus_to_pay, today)?;
    if card.holds.iter().any(|h| h.purchase_id == purchase_id) {
        return Err(RuleError::new(
            ErrorKey::IdempotencyConflict,
            "PurchaseId holds bonuses on this card already",
        ));
    }
    // Every open hold is stored in the card's record, which every write of
    // the card re-encodes: a till (or a hostile client) opening holds
    // without end would make each of the card's writes slower and its
    // record larger. A family sharing a card has a few tills, not dozens.
    if card.holds.len() >= MAX_OPEN_HOLDS {
        return Err(RuleError::new(
            ErrorKey::StatusError,
            format!(
                "the card has {MAX_OPEN_HOLDS} open holds, the most it may have: confirm or release one first"
            ),
        ));
    }
    let lots = card.ledger.reserve(bonus_to_pay, today)?;
    card.holds.push(Hold {
        purchase_id: purchase_id.to_owned(),
        owner: owner.to_owned(),
        amount,
        bonus: bonus_to_pay,
        lots,
        until,
    });
    Ok(Taken { calculation, until })
}

/// A confirm that consumes `hold` (already removed from `card`, which has
/// its expired holds freed): `bonus_to_pay` (at most what is held) is
/// written off from the reservation, nearest expiry first, and the rest
/// goes back to its lots. The reserved bonuses count whatever happened to
/// their lots' dates meanwhile: the hold promised them (a lot that expired
/// while held is Burnt only once given back). The other rules are
/// confirm's, in confirm's order; the accrual is confirm's.
pub fn confirm_held(
    rules: &BonusRules,
    card: &mut Card,
    hold: Hold,
    bonus_to_pay: Amount,
    date: Date,
    today: Date,
) -> Result<PurchaseRecord, RuleError> {
    let amount = hold.amount;
    purchase::check_status(card, bonus_to_pay)?;
    if bonus_to_pay > hold.bonus {
        return Err(RuleError::new(
            ErrorKey::InsufficientBonuses,
            format!("{bonus_to_pay} bonuses requested, {} held", hold.bonus),
        ));
    }
    let mut reserved = Ledger {
        lots: hold.lots,
        ..Ledger::default()
    };
    let writeoffs = take_in_order(&mut reserved, bonus_to_pay);
    card.ledger.unreserve(reserved.lots);
    let calc = purchase::calculate(rules, card, amount, bonus_to_pay, today);
    let growth = calc.accrual.saturating_sub(bonus_to_pay);
    if Amount::total([card.bonus_total(), growth]).is_none() {
        return Err(RuleError::new(
            ErrorKey::InvalidAmount,
            format!(
                "the card would hold more than {} bonuses, the largest total a balance states exactly",
                Amount::TOTAL_MAX
            ),
        ));
    }
    Ok(purchase::accrue(
        rules,
        card,
        &calc,
        amount,
        bonus_to_pay,
        writeoffs,
        date,
        today,
    ))
}

/// Takes `amount` from reserved lots in spend order, whatever their dates
/// (they were Active when reserved). The caller checked it is there.
fn take_in_order(reserved: &mut Ledger, amount: Amount) -> Vec<Allocation> {
    reserved.lots.sort_by_key(Lot::spend_order);
    let mut left = amount;
    let mut taken = Vec::new();
    for lot in &mut reserved.lots {
        if left == Amount::ZERO {
            break;
        }
        let part = left.min(lot.amount);
        lot.amount = lot.amount.saturating_sub(part);
        left = left.saturating_sub(part);
        taken.push(Allocation {
            amount: part,
            ..Allocation::from(&*lot)
        });
    }
    reserved.lots.retain(|l| l.amount > Amount::ZERO);
    taken
}

#[cfg(test)]
#[path = "hold_tests.rs"]
mod tests;
