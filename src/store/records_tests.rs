//! The outcome records' JSON, pinned: each kind with every field set, so a
//! field renamed back to a long name (or reordered) fails here before any
//! stored record does (docs/stored-formats.md).

use super::*;
use time::macros::{date, datetime};

fn amt(h: i64) -> Amount {
    Amount::from_hundredths(h).unwrap()
}

fn number() -> CardNumber {
    CardNumber::from_trusted("4000000000001".into())
}

fn purchase() -> PurchaseRecord {
    PurchaseRecord {
        amount: amt(10_000),
        bonus_paid: amt(1_000),
        accrual: amt(450),
        accrual_dates: (date!(2026 - 12 - 13), date!(2027 - 12 - 13)),
        writeoffs: Vec::new(),
        refunded: Amount::ZERO,
        accrual_reversed: Amount::ZERO,
        bonus_returned: Amount::ZERO,
        cancelled: false,
    }
}

fn confirmed() -> ConfirmedRecord {
    ConfirmedRecord {
        number: number(),
        purchase_id: "P:1".into(),
        amount: amt(10_000),
        bonus_to_pay: amt(1_000),
        accrual: amt(450),
        accrual_active_from: date!(2026 - 12 - 13),
        accrual_expire_date: date!(2027 - 12 - 13),
        discount_bp: 300,
    }
}

fn reversal() -> ReversalRecord {
    ReversalRecord {
        key: "refund:5:P:1:R:1".into(),
        fingerprint: "50.00".into(),
        outcome: ReversedRecord {
            number: number(),
            purchase_id: "P:1".into(),
            refund_id: Some("R:1".into()),
            amount: amt(5_000),
            accrual_reversed: amt(225),
            bonus_returned: amt(500),
            uncovered: amt(7),
            refunded_total: amt(5_000),
        },
    }
}

/// Writes `record`, compares the JSON with `pinned` and reads it back.
fn pinned<R: RecordFormat + PartialEq + std::fmt::Debug + Clone>(
    key: &str,
    record: OutcomeRecord<R>,
    pinned: &str,
) {
    let raw = R::encode(record.clone());
    assert_eq!(raw, pinned, "the stored form of {key} changed");
    assert_eq!(R::decode(key, &raw).unwrap(), record);
    check_record(key, &raw).unwrap();
}

#[test]
fn a_purchase_is_written_once_with_its_reversals() {
    let fingerprint = purchase_fingerprint(&number(), amt(10_000), amt(1_000), "2026-11-29");
    pinned(
        "purchase:P:1",
        OutcomeRecord {
            fingerprint,
            outcome: confirmed(),
            purchase: Some(purchase()),
            reversals: vec![reversal()],
        },
        concat!(
            r#"{"n":"4000000000001","t":"2026-11-29","dp":300,"#,
            r#""p":{"m":10000,"b":1000,"a":450,"d":[[2026,347],[2027,347]]},"#,
            r#""r":[{"k":"refund:5:P:1:R:1","f":"50.00","o":{"n":"4000000000001","i":"P:1","ri":"R:1","m":5000,"ar":225,"br":500,"u":7,"rt":5000}}]}"#,
        ),
    );
}

#[test]
fn a_confirm_the_purchase_cannot_rebuild_keeps_the_full_form() {
    let mut outcome = confirmed();
    outcome.accrual = amt(1);
    pinned(
        "purchase:P:1",
        OutcomeRecord {
            fingerprint: purchase_fingerprint(&number(), amt(10_000), amt(1_000), ""),
            outcome,
            purchase: Some(purchase()),
            reversals: Vec::new(),
        },
        concat!(
            r#"{"f":"4000000000001|100.00|10.00|","#,
            r#""o":{"n":"4000000000001","i":"P:1","m":10000,"b":1000,"a":1,"af":[2026,347],"ae":[2027,347],"dp":300},"#,
            r#""p":{"m":10000,"b":1000,"a":450,"d":[[2026,347],[2027,347]]}}"#,
        ),
    );
}

#[test]
fn a_manual_bonus_hold_and_release_keep_short_names() {
    pinned(
        "bonus:B:1",
        OutcomeRecord {
            fingerprint: "fp".into(),
            outcome: AccruedRecord {
                number: number(),
                operation_id: "B:1".into(),
                amount: amt(1_000),
                bonus_type: BonusType::Status,
                active_from: date!(2026 - 01 - 01),
                expire_date: Some(date!(2099 - 01 - 02)),
            },
            purchase: None,
            reversals: Vec::new(),
        },
        r#"{"f":"fp","o":{"n":"4000000000001","i":"B:1","m":1000,"t":"Status","af":[2026,1],"ae":[2099,2]}}"#,
    );
    pinned(
        "hold:P:2",
        OutcomeRecord {
            fingerprint: "fp".into(),
            outcome: HeldRecord {
                number: number(),
                purchase_id: "P:2".into(),
                amount: amt(10_000),
                bonus_to_pay: amt(1_000),
                accrual: amt(450),
                max_bonus_to_pay: amt(3_000),
                discount_bp: 300,
                held_until: datetime!(2026-12-13 10:00:00 UTC),
            },
            purchase: None,
            reversals: Vec::new(),
        },
        r#"{"f":"fp","o":{"n":"4000000000001","i":"P:2","m":10000,"b":1000,"a":450,"x":3000,"dp":300,"u":"2026-12-13T10:00:00Z"}}"#,
    );
    pinned(
        "release:P:2",
        OutcomeRecord {
            fingerprint: "fp".into(),
            outcome: ReleasedRecord {
                number: number(),
                purchase_id: "P:2".into(),
                released: amt(1_000),
            },
            purchase: None,
            reversals: Vec::new(),
        },
        r#"{"f":"fp","o":{"n":"4000000000001","i":"P:2","r":1000}}"#,
    );
}

#[test]
fn zeros_are_left_out() {
    pinned(
        "release:P:3",
        OutcomeRecord {
            fingerprint: "fp".into(),
            outcome: ReleasedRecord {
                number: number(),
                purchase_id: "P:3".into(),
                released: Amount::ZERO,
            },
            purchase: None,
            reversals: Vec::new(),
        },
        r#"{"f":"fp","o":{"n":"4000000000001","i":"P:3"}}"#,
    );
}

#[test]
fn a_record_under_an_unknown_key_or_in_another_form_is_refused() {
    assert!(check_record("other:P:1", "{}")
        .unwrap_err()
        .contains("not a record key"));
    let e = check_record("hold:P:1", r#"{"f":"fp","o":{"n":"1"}}"#).unwrap_err();
    assert!(e.contains("does not read"), "{e}");
}
