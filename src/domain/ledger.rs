//! The bonus ledger of one card: lots of bonuses, each with its amount,
//! type, activation date and expiry date. Pure: `today` is always passed in.
//!
//! A lot is Inactive before `active_from`, Active from then through its
//! `expires` date (the last usable day), Burnt after it. Write-offs take the
//! nearest-expiring Active lots first. Expired lots are compacted into a
//! per-type Burnt total so that years of history stay small.
//!
//! Lots that share their type, both dates and the kind of operation that
//! made them are one lot: a card's record is bounded by the number of
//! distinct dates, not by the number of purchases (docs/adr/0012). What a
//! cancel or refund needs to find its accrual again (its dates) is kept in
//! the purchase's record instead.

use serde::{Deserialize, Serialize};
use time::Date;

use super::error::{ErrorKey, RuleError};
use super::money::Amount;
use super::reference::{BonusStatus, BonusType};

/// The kind of operation that made a lot (a transfer keeps it). Stored by
/// number in the compact encoding (one byte on every lot of every card),
/// by name in JSON; the numbers are the format: append only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LotSource {
    /// A purchase's accrual.
    Purchase,
    /// A manual accrual (`/api/bonus`).
    Bonus,
    /// Written-off bonuses given back by a cancel or refund.
    Returned,
}

impl super::compact::Coded for LotSource {
    const WHAT: &'static str = "lot source";
    fn to_code(self) -> u8 {
        match self {
            LotSource::Purchase => 0,
            LotSource::Bonus => 1,
            LotSource::Returned => 2,
        }
    }
    fn of_code(code: u8) -> Option<Self> {
        [LotSource::Purchase, LotSource::Bonus, LotSource::Returned]
            .get(usize::from(code))
            .copied()
    }
    fn json_name(self) -> &'static str {
        match self {
            LotSource::Purchase => "purchase",
            LotSource::Bonus => "bonus",
            LotSource::Returned => "returned",
        }
    }
    fn of_json_name(name: &str) -> Option<Self> {
        [LotSource::Purchase, LotSource::Bonus, LotSource::Returned]
            .into_iter()
            .find(|s| s.json_name() == name)
    }
}
super::compact::coded_serde!(LotSource);

// The field order is the stored encoding's (a positional MessagePack array,
// src/store/codec.rs): add fields at the end only, with a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub bonus_type: BonusType,
    /// What is left of the lot.
    pub amount: Amount,
    pub active_from: Date,
    /// Last day the lot is usable; `None`: never expires.
    pub expires: Option<Date>,
    pub source: LotSource,
}

impl Lot {
    fn is_active(&self, today: Date) -> bool {
        self.active_from <= today && !self.is_expired(today)
    }

    fn is_expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|e| e < today)
    }

    /// Nearest expiry first, never-expiring last; then the earliest
    /// activation (ties keep the lots' order: oldest first).
    pub(crate) fn spend_order(&self) -> (bool, Option<Date>, Date) {
        (self.expires.is_none(), self.expires, self.active_from)
    }

    fn is(
        &self,
        bonus_type: BonusType,
        active_from: Date,
        expires: Option<Date>,
        source: LotSource,
    ) -> bool {
        self.bonus_type == bonus_type
            && self.active_from == active_from
            && self.expires == expires
            && self.source == source
    }
}

/// A part of a lot taken by a write-off: enough to give it back later with
/// its original dates. Kept in a purchase's record (one-letter names: see
/// `PurchaseRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    #[serde(rename = "a")]
    pub amount: Amount,
    #[serde(rename = "t")]
    pub bonus_type: BonusType,
    #[serde(rename = "f")]
    pub active_from: Date,
    #[serde(rename = "e", default)]
    pub expires: Option<Date>,
}

impl From<&Lot> for Allocation {
    fn from(lot: &Lot) -> Allocation {
        Allocation {
            amount: lot.amount,
            bonus_type: lot.bonus_type,
            active_from: lot.active_from,
            expires: lot.expires,
        }
    }
}

fn allocations(lots: Vec<Lot>) -> Vec<Allocation> {
    lots.iter().map(Allocation::from).collect()
}

/// One line of a balance's `Bonuses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub status: BonusStatus,
    pub bonus_type: BonusType,
    pub amount: Amount,
    /// Only for NearestExpiring.
    pub expire_date: Option<Date>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub lots: Vec<Lot>,
    /// Expired amounts of compacted lots: [cash, status].
    pub burnt: [Amount; 2],
    /// Bonuses a reversal had to take back but could not: the accrual of a
    /// returned purchase was already spent and nothing unburnt was left to
    /// cover it. Kept, not forgotten, so that the balance after any order
    /// of returns is the same (issue 27): every later credit that is not
    /// born expired pays it first. While it is above zero the card holds no
    /// unburnt lot (`settle` runs after every credit).
    #[serde(default)]
    pub debt: Amount,
}

fn type_index(t: BonusType) -> usize {
    match t {
        BonusType::Cash => 0,
        BonusType::Status => 1,
    }
}

/// A total of lots: never clamped to the input cap (issue 27, a card may
/// hold more than one credit's maximum); `TOTAL_MAX` is out of reach, as
/// credits that would pass it are refused.
fn sum(amounts: impl Iterator<Item = Amount>) -> Amount {
    Amount::total(amounts).unwrap_or(Amount::TOTAL_MAX)
}

impl Ledger {
    /// Adds bonuses: to the lot of the same type, dates and source if there
    /// is one, else as a new lot.
    pub fn accrue(
        &mut self,
        amount: Amount,
        bonus_type: BonusType,
        active_from: Date,
        expires: Option<Date>,
        source: LotSource,
    ) {
        if amount == Amount::ZERO {
            return;
        }
        // A lot that cannot take the amount without passing the largest
        // amount stays as it is and a new lot takes it: nothing is clamped.
        let merged = self
            .lots
            .iter_mut()
            .filter(|l| l.is(bonus_type, active_from, expires, source))
            .find_map(|l| l.amount.checked_add(amount).map(|sum| (l, sum)));
        match merged {
            Some((lot, sum)) => lot.amount = sum,
            None => self.lots.push(Lot {
                bonus_type,
                amount,
                active_from,
                expires,
                source,
            }),
        }
    }

    /// What can be written off today.
    pub fn usable(&self, today: Date) -> Amount {
        sum(self
            .lots
            .iter()
            .filter(|l| l.is_active(today))
            .map(|l| l.amount))
    }

    /// Everything not yet burnt (Active and Inactive).
    pub fn unburnt(&self, today: Date) -> Amount {
        sum(self
            .lots
            .iter()
            .filter(|l| !l.is_expired(today))
            .map(|l| l.amount))
    }

    /// Everything the card holds, has held (Burnt) or owes: what a credit
    /// must not take past `Amount::TOTAL_MAX`, so that no bucket of the
    /// balance ever sums past what the answer can state.
    pub fn total(&self) -> Amount {
        sum(self
            .lots
            .iter()
            .map(|l| l.amount)
            .chain(self.burnt)
            .chain([self.debt]))
    }

    pub fn burnt_total(&self, today: Date) -> Amount {
        let expired = sum(self
            .lots
            .iter()
            .filter(|l| l.is_expired(today))
            .map(|l| l.amount));
        sum([self.burnt[0], self.burnt[1], expired].into_iter())
    }

    /// Takes `amount` from the Active lots, nearest expiry first. All or
    /// nothing: more than is usable → `InsufficientBonuses`, ledger unchanged.
    pub fn write_off(&mut self, amount: Amount, today: Date) -> Result<Vec<Allocation>, RuleError> {
        let usable = self.usable(today);
        if amount > usable {
            return Err(RuleError::new(
                ErrorKey::InsufficientBonuses,
                format!("{amount} bonuses requested, {usable} usable"),
            ));
        }
        Ok(allocations(
            self.take(amount, today, |l, today| l.is_active(today)),
        ))
    }

    /// Takes `amount` from the Active lots as a write-off would (nearest
    /// expiry first), keeping each part as a lot with its dates and
    /// source: a hold's reservation, given back to the very lots it came
    /// from if it is never confirmed. All or nothing, as `write_off`.
    pub fn reserve(&mut self, amount: Amount, today: Date) -> Result<Vec<Lot>, RuleError> {
        let usable = self.usable(today);
        if amount > usable {
            return Err(RuleError::new(
                ErrorKey::InsufficientBonuses,
                format!("{amount} bonuses requested, {usable} usable"),
            ));
        }
        Ok(self.take(amount, today, |l, today| l.is_active(today)))
    }

    /// Gives reserved lots back, each merged into its lot again (the same
    /// type, dates and source): an expired one comes back Burnt.
    pub fn unreserve(&mut self, lots: Vec<Lot>) {
        for lot in lots {
            self.accrue(
                lot.amount,
                lot.bonus_type,
                lot.active_from,
                lot.expires,
                lot.source,
            );
        }
    }

    /// Takes up to `amount` from unburnt lots (Active first, then Inactive,
    /// each nearest expiry first) — for reversing an accrual whose bonuses
    /// were partly spent. Returns what it could take.
    pub fn take_back(&mut self, amount: Amount, today: Date) -> Vec<Allocation> {
        let mut taken = self.take(amount, today, |l, today| l.is_active(today));
        let got = sum(taken.iter().map(|a| a.amount));
        taken.extend(self.take(amount.saturating_sub(got), today, |l, today| {
            !l.is_expired(today) && !l.is_active(today)
        }));
        allocations(taken)
    }

    fn take(
        &mut self,
        amount: Amount,
        today: Date,
        eligible: impl Fn(&Lot, Date) -> bool,
    ) -> Vec<Lot> {
        let mut order: Vec<usize> = (0..self.lots.len())
            .filter(|&i| eligible(&self.lots[i], today))
            .collect();
        order.sort_by_key(|&i| self.lots[i].spend_order());
        let mut left = amount;
        let mut taken = Vec::new();
        for i in order {
            if left == Amount::ZERO {
                break;
            }
            let lot = &mut self.lots[i];
            let part = left.min(lot.amount);
            lot.amount = lot.amount.saturating_sub(part);
            left = left.saturating_sub(part);
            taken.push(Lot {
                amount: part,
                ..lot.clone()
            });
        }
        self.lots.retain(|l| l.amount > Amount::ZERO);
        taken
    }

    /// Removes up to `amount` from the lot a purchase's accrual went into
    /// (reversing it), found by its type, dates and source, which a move to
    /// a replacement card keeps. Returns what was removed (less when part
    /// was already spent).
    pub fn remove_from_lot(
        &mut self,
        bonus_type: BonusType,
        active_from: Date,
        expires: Option<Date>,
        source: LotSource,
        amount: Amount,
    ) -> Amount {
        let mut left = amount;
        for l in self
            .lots
            .iter_mut()
            .filter(|l| l.is(bonus_type, active_from, expires, source))
        {
            let part = left.min(l.amount);
            l.amount = l.amount.saturating_sub(part);
            left = left.saturating_sub(part);
        }
        self.lots.retain(|l| l.amount > Amount::ZERO);
        amount.saturating_sub(left)
    }

    /// Adds to what the card owes.
    pub fn owe(&mut self, amount: Amount) {
        self.debt = sum([self.debt, amount].into_iter());
    }

    /// Pays the debt from the unburnt lots (Active first, nearest expiry
    /// first, as a take-back does): called after every credit, so that a
    /// credit pays what is owed before it can be spent. What is born
    /// expired pays nothing: it was never usable, and a take-back never
    /// takes from Burnt either. Returns what was paid.
    pub fn settle(&mut self, today: Date) -> Amount {
        if self.debt == Amount::ZERO {
            return Amount::ZERO;
        }
        let paid = sum(self.take_back(self.debt, today).iter().map(|a| a.amount));
        self.debt = self.debt.saturating_sub(paid);
        paid
    }

    /// Gives written-off bonuses back with their original dates (an expired
    /// one comes back Burnt).
    pub fn restore(&mut self, allocations: &[Allocation]) {
        for a in allocations {
            self.accrue(
                a.amount,
                a.bonus_type,
                a.active_from,
                a.expires,
                LotSource::Returned,
            );
        }
    }

    /// Moves every unburnt lot out (card replacement); dates are kept.
    pub fn take_all_unburnt(&mut self, today: Date) -> Vec<Lot> {
        self.compact(today);
        std::mem::take(&mut self.lots)
    }

    /// Receives lots and the debt moved from another card (the lots merged
    /// with its own lots of the same type, dates and source); what is owed
    /// on either card is then paid from the lots of both.
    pub fn receive(&mut self, lots: Vec<Lot>, debt: Amount, today: Date) {
        for lot in lots {
            self.accrue(
                lot.amount,
                lot.bonus_type,
                lot.active_from,
                lot.expires,
                lot.source,
            );
        }
        self.owe(debt);
        self.settle(today);
    }

    /// Folds expired lots into the Burnt totals.
    pub fn compact(&mut self, today: Date) {
        let mut burnt = self.burnt;
        self.lots.retain(|l| {
            if l.is_expired(today) {
                let t = type_index(l.bonus_type);
                burnt[t] = sum([burnt[t], l.amount].into_iter());
                false
            } else {
                l.amount > Amount::ZERO
            }
        });
        self.burnt = burnt;
    }

    /// The balance of §5.1 as of `today`. `frozen`: the card is Blocked, so
    /// what would be Active or Inactive is reported as Frozen.
    pub fn buckets(&self, today: Date, frozen: bool) -> Vec<Bucket> {
        let mut out = Vec::new();
        for bonus_type in BonusType::ALL.iter().copied() {
            let of_type = || self.lots.iter().filter(move |l| l.bonus_type == bonus_type);
            let active = sum(of_type().filter(|l| l.is_active(today)).map(|l| l.amount));
            let inactive = sum(of_type()
                .filter(|l| l.active_from > today && !l.is_expired(today))
                .map(|l| l.amount));
            let burnt = sum([self.burnt[type_index(bonus_type)]]
                .into_iter()
                .chain(of_type().filter(|l| l.is_expired(today)).map(|l| l.amount)));
            let mut push = |status, amount: Amount, expire_date| {
                if amount > Amount::ZERO {
                    out.push(Bucket {
                        status,
                        bonus_type,
                        amount,
                        expire_date,
                    });
                }
            };
            if frozen {
                push(
                    BonusStatus::Frozen,
                    sum([active, inactive].into_iter()),
                    None,
                );
            } else {
                push(BonusStatus::Active, active, None);
                push(BonusStatus::Inactive, inactive, None);
            }
            push(BonusStatus::Burnt, burnt, None);
            if !frozen {
                let nearest = of_type()
                    .filter(|l| l.is_active(today))
                    .filter_map(|l| l.expires)
                    .min();
                if let Some(date) = nearest {
                    let amount = sum(of_type()
                        .filter(|l| l.is_active(today) && l.expires == Some(date))
                        .map(|l| l.amount));
                    push(BonusStatus::NearestExpiring, amount, Some(date));
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
