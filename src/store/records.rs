//! The outcome records of a card's record set (`…:recs`, docs/adr/0013) as
//! they are stored: what is kept under an idempotency key
//! (`purchase:<PurchaseId>`, `bonus:<OperationId>`, `hold:…`, `release:…`).
//! Every purchase keeps one for the whole retention, so its size is Redis
//! RAM per purchase: the JSON uses one- and two-letter names, leaves zeros
//! out, and a purchase writes its amounts and dates once (the answer to a
//! replay is rebuilt from the purchase's record). These types own that
//! format (docs/stored-formats.md); the engine's replies carry no serde
//! names of their own and convert to and from them (`engine/kept.rs`, on
//! the engine's side: the store imports no engine module).

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::StoreError;
use crate::domain::purchase::PurchaseRecord;
use crate::domain::{Amount, BonusType, CardNumber};

/// An operation's outcome as stored: the request's fingerprint, the answer,
/// and for a purchase its record and its reversals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord<R> {
    /// The request's meaningful fields: a replay must match them.
    #[serde(rename = "f")]
    pub fingerprint: String,
    #[serde(rename = "o")]
    pub outcome: R,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub purchase: Option<PurchaseRecord>,
    /// A purchase's refunds and cancel. They live in the purchase's record,
    /// so that they share its one life (and its copies onto replacement
    /// cards): no reversal's outcome can expire while the purchase it
    /// reversed can still be reversed again.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub reversals: Vec<ReversalRecord>,
}

/// A refund or cancel of a purchase: its key, its request's fingerprint
/// and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalRecord {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "f")]
    pub fingerprint: String,
    #[serde(rename = "o")]
    pub outcome: ReversedRecord,
}

/// A confirm's answer. Written out only when the purchase's record cannot
/// rebuild it (see [`ConfirmedRecord::encode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedRecord {
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
    #[serde(rename = "dp", default, skip_serializing_if = "is_zero_bp")]
    pub discount_bp: i64,
}

/// A refund's or cancel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversedRecord {
    #[serde(rename = "n")]
    pub number: CardNumber,
    #[serde(rename = "i")]
    pub purchase_id: String,
    #[serde(rename = "ri", default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
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

/// A manual bonus's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccruedRecord {
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

/// A hold's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRecord {
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
    #[serde(rename = "x", default, skip_serializing_if = "Amount::is_zero")]
    pub max_bonus_to_pay: Amount,
    #[serde(rename = "dp", default, skip_serializing_if = "is_zero_bp")]
    pub discount_bp: i64,
    #[serde(rename = "u", with = "time::serde::rfc3339")]
    pub held_until: OffsetDateTime,
}

/// A release's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedRecord {
    #[serde(rename = "n")]
    pub number: CardNumber,
    #[serde(rename = "i")]
    pub purchase_id: String,
    #[serde(rename = "r", default, skip_serializing_if = "Amount::is_zero")]
    pub released: Amount,
}

fn is_zero_bp(bp: &i64) -> bool {
    *bp == 0
}

/// An outcome record kind and the way its records are written.
pub trait RecordFormat: Sized + Serialize + DeserializeOwned {
    /// Plain JSON of the whole record, unless a kind has a smaller form.
    fn encode(record: OutcomeRecord<Self>) -> String {
        to_json(&record)
    }

    /// `key` is the record's (`purchase:<PurchaseId>`, ...).
    fn decode(key: &str, raw: &str) -> Result<OutcomeRecord<Self>, StoreError> {
        from_json(key, raw)
    }
}

impl RecordFormat for AccruedRecord {}
impl RecordFormat for HeldRecord {}
impl RecordFormat for ReleasedRecord {}

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
    r: Vec<ReversalRecord>,
}

/// What a confirm's fingerprint is made of. Part of the format: the
/// written-once form keeps only the request's `Date` and rebuilds the
/// fingerprint from it and the purchase's record.
pub fn purchase_fingerprint(
    number: &CardNumber,
    amount: Amount,
    bonus_to_pay: Amount,
    date: &str,
) -> String {
    format!("{number}|{amount}|{bonus_to_pay}|{date}")
}

impl RecordFormat for ConfirmedRecord {
    /// The written-once form when the answer is exactly what the purchase's
    /// record rebuilds; anything else keeps the full form.
    fn encode(record: OutcomeRecord<Self>) -> String {
        let o = &record.outcome;
        let date = record.fingerprint.strip_prefix(&purchase_fingerprint(
            &o.number,
            o.amount,
            o.bonus_to_pay,
            "",
        ));
        let compact = match (date, &record.purchase) {
            (Some(date), Some(p)) => {
                let date = date.to_owned();
                let answer = rebuild(&o.purchase_id, &o.number, o.discount_bp, p);
                (answer == *o).then_some(date)
            }
            _ => None,
        };
        match (compact, record) {
            (
                Some(t),
                OutcomeRecord {
                    outcome,
                    purchase: Some(p),
                    reversals,
                    ..
                },
            ) => to_json(&KeptPurchase {
                n: outcome.number,
                t,
                dp: outcome.discount_bp,
                p,
                r: reversals,
            }),
            (_, record) => to_json(&record),
        }
    }

    fn decode(key: &str, raw: &str) -> Result<OutcomeRecord<Self>, StoreError> {
        let Ok(kept) = serde_json::from_str::<KeptPurchase>(raw) else {
            return from_json(key, raw);
        };
        let purchase_id = key.strip_prefix("purchase:").unwrap_or(key);
        Ok(OutcomeRecord {
            fingerprint: purchase_fingerprint(&kept.n, kept.p.amount, kept.p.bonus_paid, &kept.t),
            outcome: rebuild(purchase_id, &kept.n, kept.dp, &kept.p),
            purchase: Some(kept.p),
            reversals: kept.r,
        })
    }
}

/// The answer of a confirm, from what the purchase's record keeps.
fn rebuild(
    purchase_id: &str,
    number: &CardNumber,
    discount_bp: i64,
    p: &PurchaseRecord,
) -> ConfirmedRecord {
    let (active_from, expires) = p.accrual_dates;
    ConfirmedRecord {
        number: number.clone(),
        purchase_id: purchase_id.to_owned(),
        amount: p.amount,
        bonus_to_pay: p.bonus_paid,
        accrual: p.accrual,
        accrual_active_from: active_from,
        accrual_expire_date: expires,
        discount_bp,
    }
}

/// Whether `raw` reads as the record kept under `key`: an import writes no
/// record the engine could not read back.
pub fn check_record(key: &str, raw: &str) -> Result<(), String> {
    let read = if key.starts_with("purchase:") {
        ConfirmedRecord::decode(key, raw).map(drop)
    } else if key.starts_with("bonus:") {
        AccruedRecord::decode(key, raw).map(drop)
    } else if key.starts_with("hold:") {
        HeldRecord::decode(key, raw).map(drop)
    } else if key.starts_with("release:") {
        ReleasedRecord::decode(key, raw).map(drop)
    } else {
        return Err(format!(
            "{key:?} is not a record key (purchase:…, bonus:…, hold:… or release:…)"
        ));
    };
    read.map_err(|e| format!("the record {key:?} does not read: {e}"))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data (strings, integers, dates) always serializes")
}

fn from_json<T: DeserializeOwned>(key: &str, raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
