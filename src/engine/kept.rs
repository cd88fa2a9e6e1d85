//! What the engine keeps under an idempotency key (`purchase:<PurchaseId>`,
//! `bonus:<OperationId>`, `hold:…`, `release:…`), in its own terms: the
//! request's fingerprint and the reply to give a replay. The stored form
//! is the store's (`store/records.rs` owns the compact JSON); this module
//! converts between the two, on the engine's side because the store
//! imports no engine module.

use super::error::EngineError;
use super::types::{Accrued, Confirmed, Held, Released, Reversed};
use crate::domain::purchase::PurchaseRecord;
use crate::store::records::{
    AccruedRecord, ConfirmedRecord, HeldRecord, OutcomeRecord, RecordFormat, ReleasedRecord,
    ReversalRecord, ReversedRecord,
};

// The confirm's fingerprint is part of the stored format (its written-once
// form rebuilds it): the store owns it, the purchase family computes it.
pub(crate) use crate::store::records::purchase_fingerprint;

/// An operation's stored outcome, as the engine uses it.
#[derive(Debug, Clone)]
pub(crate) struct Stored<T> {
    /// The request's meaningful fields: a replay must match them.
    pub fingerprint: String,
    pub outcome: T,
    pub purchase: Option<PurchaseRecord>,
    /// A purchase's refunds and cancel, each with its request's
    /// fingerprint and its answer (stored in the purchase's record: see
    /// `OutcomeRecord::reversals`).
    pub reversals: Vec<ReversalOutcome>,
}

#[derive(Debug, Clone)]
pub(crate) struct ReversalOutcome {
    pub key: String,
    pub fingerprint: String,
    pub outcome: Reversed,
}

/// A reply that is kept, and the store's record it is kept as.
pub(crate) trait Kept: Sized + Clone {
    type Record: RecordFormat + From<Self> + Into<Self>;

    fn encode(stored: &Stored<Self>) -> String {
        Self::Record::encode(OutcomeRecord::from(stored.clone()))
    }

    /// `key` is the record's (`purchase:<PurchaseId>`, ...).
    fn decode(key: &str, raw: &str) -> Result<Stored<Self>, EngineError> {
        Ok(Self::Record::decode(key, raw)?.into())
    }
}

impl Kept for Confirmed {
    type Record = ConfirmedRecord;
}

impl Kept for Accrued {
    type Record = AccruedRecord;
}

impl Kept for Held {
    type Record = HeldRecord;
}

impl Kept for Released {
    type Record = ReleasedRecord;
}

impl<T: Kept> From<Stored<T>> for OutcomeRecord<T::Record> {
    fn from(s: Stored<T>) -> Self {
        OutcomeRecord {
            fingerprint: s.fingerprint,
            outcome: s.outcome.into(),
            purchase: s.purchase,
            reversals: s.reversals.into_iter().map(Into::into).collect(),
        }
    }
}

impl<T: Kept> From<OutcomeRecord<T::Record>> for Stored<T> {
    fn from(r: OutcomeRecord<T::Record>) -> Self {
        Stored {
            fingerprint: r.fingerprint,
            outcome: r.outcome.into(),
            purchase: r.purchase,
            reversals: r.reversals.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ReversalOutcome> for ReversalRecord {
    fn from(r: ReversalOutcome) -> Self {
        ReversalRecord {
            key: r.key,
            fingerprint: r.fingerprint,
            outcome: r.outcome.into(),
        }
    }
}

impl From<ReversalRecord> for ReversalOutcome {
    fn from(r: ReversalRecord) -> Self {
        ReversalOutcome {
            key: r.key,
            fingerprint: r.fingerprint,
            outcome: r.outcome.into(),
        }
    }
}

/// A field-for-field conversion between a reply and its record, both ways:
/// the two lists of fields are one, so neither side can gain a field the
/// other misses (a struct literal names every field).
macro_rules! same_fields {
    ($reply:ident <=> $record:ident { $($field:ident),* $(,)? }) => {
        impl From<$reply> for $record {
            fn from(v: $reply) -> Self {
                $record { $($field: v.$field),* }
            }
        }

        impl From<$record> for $reply {
            fn from(v: $record) -> Self {
                $reply { $($field: v.$field),* }
            }
        }
    };
}

same_fields!(Confirmed <=> ConfirmedRecord {
    number,
    purchase_id,
    amount,
    bonus_to_pay,
    accrual,
    accrual_active_from,
    accrual_expire_date,
    discount_bp,
});

same_fields!(Reversed <=> ReversedRecord {
    number,
    purchase_id,
    refund_id,
    amount,
    accrual_reversed,
    bonus_returned,
    uncovered,
    refunded_total,
});

same_fields!(Accrued <=> AccruedRecord {
    number,
    operation_id,
    amount,
    bonus_type,
    active_from,
    expire_date,
});

same_fields!(Held <=> HeldRecord {
    number,
    purchase_id,
    amount,
    bonus_to_pay,
    accrual,
    max_bonus_to_pay,
    discount_bp,
    held_until,
});

same_fields!(Released <=> ReleasedRecord {
    number,
    purchase_id,
    released,
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, CardNumber};
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

    /// `stored` is written as `json` (the store's compact form, pinned in
    /// `store::records::tests`) and reads back as the same reply.
    fn round_trip<T: Kept + PartialEq + std::fmt::Debug>(key: &str, stored: Stored<T>, json: &str) {
        let raw = T::encode(&stored);
        assert_eq!(raw, json);
        let back = T::decode(key, &raw).unwrap();
        assert_eq!(back.fingerprint, stored.fingerprint);
        assert_eq!(back.outcome, stored.outcome);
        assert_eq!(back.purchase, stored.purchase);
        let outcomes = |s: &Stored<T>| -> Vec<(String, String, Reversed)> {
            s.reversals
                .iter()
                .map(|r| (r.key.clone(), r.fingerprint.clone(), r.outcome.clone()))
                .collect()
        };
        assert_eq!(outcomes(&back), outcomes(&stored));
    }

    fn plain<T>(outcome: T) -> Stored<T> {
        Stored {
            fingerprint: "fp".into(),
            outcome,
            purchase: None,
            reversals: Vec::new(),
        }
    }

    #[test]
    fn every_kept_reply_round_trips_through_its_compact_record() {
        let number = CardNumber::from_trusted("4000000000001".into());
        let mut purchase = stored("2026-11-29");
        purchase.reversals.push(ReversalOutcome {
            key: "cancel:P:1".into(),
            fingerprint: String::new(),
            outcome: Reversed {
                number: number.clone(),
                purchase_id: "P:1".into(),
                refund_id: None,
                amount: amt(10_000),
                accrual_reversed: amt(450),
                bonus_returned: amt(1_000),
                uncovered: Amount::ZERO,
                refunded_total: amt(10_000),
            },
        });
        round_trip(
            "purchase:P:1",
            purchase,
            concat!(
                r#"{"n":"4000000000001","t":"2026-11-29","dp":300,"#,
                r#""p":{"m":10000,"b":1000,"a":450,"d":[[2026,347],[2027,347]]},"#,
                r#""r":[{"k":"cancel:P:1","f":"","o":{"n":"4000000000001","i":"P:1","m":10000,"ar":450,"br":1000,"rt":10000}}]}"#,
            ),
        );
        round_trip(
            "bonus:B:1",
            plain(Accrued {
                number: number.clone(),
                operation_id: "B:1".into(),
                amount: amt(1_000),
                bonus_type: crate::domain::BonusType::Cash,
                active_from: date!(2026 - 01 - 01),
                expire_date: None,
            }),
            r#"{"f":"fp","o":{"n":"4000000000001","i":"B:1","m":1000,"t":"Cash","af":[2026,1],"ae":null}}"#,
        );
        round_trip(
            "hold:P:2",
            plain(Held {
                number: number.clone(),
                purchase_id: "P:2".into(),
                amount: amt(10_000),
                bonus_to_pay: Amount::ZERO,
                accrual: amt(450),
                max_bonus_to_pay: amt(3_000),
                discount_bp: 0,
                held_until: time::macros::datetime!(2026-12-13 10:00:00.5 UTC),
            }),
            r#"{"f":"fp","o":{"n":"4000000000001","i":"P:2","m":10000,"a":450,"x":3000,"u":"2026-12-13T10:00:00.5Z"}}"#,
        );
        round_trip(
            "release:P:2",
            plain(Released {
                number,
                purchase_id: "P:2".into(),
                released: amt(1_000),
            }),
            r#"{"f":"fp","o":{"n":"4000000000001","i":"P:2","r":1000}}"#,
        );
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
