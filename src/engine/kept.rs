//! What is kept under an idempotency key (`purchase:<PurchaseId>`,
//! `bonus:<OperationId>`) and how it is written. Every purchase keeps one
//! for the whole retention, so its size is Redis RAM per purchase: the JSON
//! uses one- and two-letter names, leaves zeros out, and a purchase writes
//! its amounts and dates once (the answer to a replay is rebuilt from the
//! purchase's record).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::error::EngineError;
use super::types::{is_zero_bp, Accrued, Confirmed, Reversed};
use crate::domain::purchase::PurchaseRecord;
use crate::domain::{Amount, CardNumber};
use crate::store::StoreError;

/// An operation's stored outcome, as the engine uses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored<T> {
    /// The request's meaningful fields: a replay must match them.
    #[serde(rename = "f")]
    pub fingerprint: String,
    #[serde(rename = "o")]
    pub outcome: T,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<PurchaseRecord>,
    /// A purchase's refunds and cancel, each with its request's
    /// fingerprint and its answer. They live in the purchase's record, so
    /// that they share its one life (and its copies onto replacement
    /// cards): no reversal's outcome can expire while the purchase it
    /// reversed can still be reversed again.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub reversals: Vec<ReversalOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReversalOutcome {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "f")]
    pub fingerprint: String,
    #[serde(rename = "o")]
    pub outcome: Reversed,
}

/// An outcome type and the way its records are written.
pub(crate) trait Kept: Sized {
    fn encode(stored: &Stored<Self>) -> String;
    /// `key` is the record's (`purchase:<PurchaseId>`, ...).
    fn decode(key: &str, raw: &str) -> Result<Stored<Self>, EngineError>;
}

impl Kept for Accrued {
    fn encode(stored: &Stored<Self>) -> String {
        to_json(stored)
    }

    fn decode(key: &str, raw: &str) -> Result<Stored<Self>, EngineError> {
        from_json(key, raw)
    }
}

/// A confirmed purchase as written: the card it was confirmed on, the
/// request's `Date` (the rest of the request's fingerprint is the
/// purchase's amounts), the discount, the purchase record and its
/// reversals. The PurchaseId is the record's key.
#[derive(Debug, Serialize, Deserialize)]
struct KeptPurchase {
    n: CardNumber,
    /// The request's `Date` as sent ("" without one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    t: String,
    #[serde(default, skip_serializing_if = "is_zero_bp")]
    dp: i64,
    p: PurchaseRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<ReversalOutcome>,
}

/// What a confirm's fingerprint is made of (`Confirmed`'s request).
pub(crate) fn purchase_fingerprint(
    number: &CardNumber,
    amount: Amount,
    bonus_to_pay: Amount,
    date: &str,
) -> String {
    format!("{number}|{amount}|{bonus_to_pay}|{date}")
}

impl Kept for Confirmed {
    fn encode(stored: &Stored<Self>) -> String {
        let o = &stored.outcome;
        let compact = stored.purchase.as_ref().and_then(|p| {
            let date = stored.fingerprint.strip_prefix(&purchase_fingerprint(
                &o.number,
                o.amount,
                o.bonus_to_pay,
                "",
            ))?;
            // Written once only when the answer is exactly what the record
            // rebuilds; anything else keeps the full form.
            let kept = KeptPurchase {
                n: o.number.clone(),
                t: date.to_owned(),
                dp: o.discount_bp,
                p: p.clone(),
                r: stored.reversals.clone(),
            };
            (rebuild(&o.purchase_id, &kept) == *o).then_some(kept)
        });
        match compact {
            Some(kept) => to_json(&kept),
            None => to_json(stored),
        }
    }

    fn decode(key: &str, raw: &str) -> Result<Stored<Self>, EngineError> {
        let Ok(kept) = serde_json::from_str::<KeptPurchase>(raw) else {
            return from_json(key, raw);
        };
        let purchase_id = key.strip_prefix("purchase:").unwrap_or(key);
        let outcome = rebuild(purchase_id, &kept);
        Ok(Stored {
            fingerprint: purchase_fingerprint(&kept.n, kept.p.amount, kept.p.bonus_paid, &kept.t),
            outcome,
            purchase: Some(kept.p),
            reversals: kept.r,
        })
    }
}

/// The answer of a confirm, from what the record keeps.
fn rebuild(purchase_id: &str, kept: &KeptPurchase) -> Confirmed {
    let (active_from, expires) = kept.p.accrual_dates;
    Confirmed {
        number: kept.n.clone(),
        purchase_id: purchase_id.to_owned(),
        amount: kept.p.amount,
        bonus_to_pay: kept.p.bonus_paid,
        accrual: kept.p.accrual,
        accrual_active_from: active_from,
        accrual_expire_date: expires,
        discount_bp: kept.dp,
    }
}

/// Whether `raw` reads as the record the engine keeps under `key`: an
/// import writes no record the engine could not read back.
pub fn check_record(key: &str, raw: &str) -> Result<(), String> {
    let read = if key.starts_with("purchase:") {
        Confirmed::decode(key, raw).map(drop)
    } else if key.starts_with("bonus:") {
        Accrued::decode(key, raw).map(drop)
    } else if key.starts_with("hold:") {
        super::types::Held::decode(key, raw).map(drop)
    } else if key.starts_with("release:") {
        super::types::Released::decode(key, raw).map(drop)
    } else {
        return Err(format!(
            "{key:?} is not a record key (purchase:…, bonus:…, hold:… or release:…)"
        ));
    };
    read.map_err(|e| format!("the record {key:?} does not read: {e}"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data (strings, integers, dates) always serializes")
}

pub(crate) fn from_json<T: DeserializeOwned>(key: &str, raw: &str) -> Result<T, EngineError> {
    serde_json::from_str(raw).map_err(|e| corrupt(key, e.to_string()))
}

fn corrupt(key: &str, reason: String) -> EngineError {
    EngineError::from(StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn amt(h: i64) -> Amount {
        Amount::from_hundredths(h).unwrap()
    }

    fn stored(date: &str) -> Stored<Confirmed> {
        let number = CardNumber::from_trusted("4000000000001".into());
        let record = PurchaseRecord {
            amount: amt(10_000),
            bonus_paid: amt(1_000),
            accrual: amt(450),
            accrual_dates: (date!(2026 - 12 - 13), date!(2027 - 12 - 13)),
            writeoffs: Vec::new(),
            refunded: Amount::ZERO,
            accrual_reversed: Amount::ZERO,
            bonus_returned: Amount::ZERO,
            cancelled: false,
        };
        Stored {
            fingerprint: purchase_fingerprint(&number, amt(10_000), amt(1_000), date),
            outcome: Confirmed {
                number,
                purchase_id: "P:1".into(),
                amount: amt(10_000),
                bonus_to_pay: amt(1_000),
                accrual: amt(450),
                accrual_active_from: date!(2026 - 12 - 13),
                accrual_expire_date: date!(2027 - 12 - 13),
                discount_bp: 300,
            },
            purchase: Some(record),
            reversals: Vec::new(),
        }
    }

    fn same(a: &Stored<Confirmed>, b: &Stored<Confirmed>) {
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.outcome, b.outcome);
        assert_eq!(a.purchase, b.purchase);
        assert_eq!(a.reversals.len(), b.reversals.len());
    }

    #[test]
    fn a_purchase_is_written_once_and_reads_back_whole() {
        for date in ["", "2026-11-29"] {
            let s = stored(date);
            let raw = Confirmed::encode(&s);
            assert!(!raw.contains("\"o\""), "{raw}");
            assert!(raw.len() < 120, "{} bytes: {raw}", raw.len());
            same(&Confirmed::decode("purchase:P:1", &raw).unwrap(), &s);
        }
    }

    #[test]
    fn an_answer_the_record_cannot_rebuild_keeps_the_full_form() {
        let mut s = stored("");
        s.outcome.accrual = amt(1);
        let raw = Confirmed::encode(&s);
        assert!(raw.contains("\"o\""), "{raw}");
        same(&Confirmed::decode("purchase:P:1", &raw).unwrap(), &s);
    }
}
