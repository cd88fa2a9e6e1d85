//! The domain's hot pieces in isolation: a card record's encoding by ledger
//! size (as the Redis store writes and reads it, src/store/codec.rs, and as
//! JSON, the export's form), the balance buckets, and write-off and refund on
//! large ledgers.
//!
//! `cargo bench --bench domain` (HTML in target/criterion/report/);
//! `cargo test --benches` runs each once as a test.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use time::macros::date;
use time::{Date, Duration};

use loyalty::domain::ledger::LotSource;
use loyalty::domain::purchase::{self, BonusRules};
use loyalty::domain::{Amount, BonusType, Card, CardNumber, CardStatus, CardType, Category};
use loyalty::store::codec;

const TODAY: Date = date!(2026 - 06 - 01);
const LOTS: [usize; 4] = [0, 10, 100, 1_000];

fn rules() -> BonusRules {
    BonusRules {
        accrual_bp: 500,
        activation_delay_days: 14,
        expiry_days: 365,
        max_writeoff_bp: 5_000,
        discount_bp: 300,
        date_max_age_secs: 30 * 86_400,
        date_max_ahead_secs: 86_400,
    }
}

fn amount(hundredths: i64) -> Amount {
    Amount::from_hundredths(hundredths).expect("a valid amount")
}

/// An Active card with `lots` lots: purchases of the past year (some still
/// Inactive, some expiring soon), as a card that has been used for a while.
/// Lots of one day merge, so each lot has dates of its own.
pub fn card_with_lots(lots: usize) -> Card {
    let mut card = Card::new(
        CardNumber::from_trusted("7100000000001".into()),
        Category::Plastic,
        CardType::Bonus,
    );
    card.status = CardStatus::Active;
    for i in 0..lots {
        let active_from = TODAY - Duration::days(350) + Duration::days((i % 364) as i64);
        card.ledger.accrue(
            amount(1_000 + (i as i64 % 900) * 10),
            if i % 10 == 0 {
                BonusType::Status
            } else {
                BonusType::Cash
            },
            active_from,
            Some(active_from + Duration::days(365 + (i / 364) as i64)),
            LotSource::Purchase,
        );
    }
    card
}

fn card_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("card_record");
    for lots in LOTS {
        let card = card_with_lots(lots);
        assert_eq!(card.ledger.lots.len(), lots, "lots of distinct dates");
        let stored = codec::encode(&card).expect("a card encodes");
        g.throughput(Throughput::Bytes(stored.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", lots), &card, |b, card| {
            b.iter(|| codec::encode(black_box(card)).expect("encodes"))
        });
        g.bench_with_input(BenchmarkId::new("decode", lots), &stored, |b, bytes| {
            b.iter(|| codec::decode::<Card>("card", black_box(bytes)).expect("decodes"))
        });
        // The card as the export and the change stream carry it (JSON),
        // for comparison.
        let json = serde_json::to_vec(&card).expect("a card encodes");
        g.bench_with_input(BenchmarkId::new("encode_json", lots), &card, |b, card| {
            b.iter(|| serde_json::to_vec(black_box(card)).expect("encodes"))
        });
        g.bench_with_input(BenchmarkId::new("decode_json", lots), &json, |b, json| {
            b.iter(|| serde_json::from_slice::<Card>(black_box(json)).expect("decodes"))
        });
    }
    g.finish();
}

fn balance_buckets(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance_buckets");
    for lots in LOTS {
        let card = card_with_lots(lots);
        g.bench_with_input(BenchmarkId::from_parameter(lots), &card, |b, card| {
            b.iter(|| black_box(card).ledger.buckets(TODAY, false))
        });
    }
    g.finish();
}

fn write_off(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_off");
    for lots in [10, 100, 1_000] {
        let card = card_with_lots(lots);
        // A purchase paying 30.00 in bonuses: several nearest-expiring lots.
        g.bench_with_input(BenchmarkId::new("confirm", lots), &card, |b, card| {
            b.iter_batched(
                || card.clone(),
                |mut card| {
                    purchase::confirm(
                        &rules(),
                        &mut card,
                        amount(10_000),
                        amount(3_000),
                        TODAY,
                        TODAY,
                    )
                    .expect("the card has the bonuses")
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn refund(c: &mut Criterion) {
    let mut g = c.benchmark_group("refund");
    for lots in [10, 100, 1_000] {
        let mut card = card_with_lots(lots);
        let record = purchase::confirm(
            &rules(),
            &mut card,
            amount(10_000),
            amount(3_000),
            TODAY,
            TODAY,
        )
        .expect("the card has the bonuses");
        g.bench_with_input(
            BenchmarkId::new("partial", lots),
            &(card, record),
            |b, (card, record)| {
                b.iter_batched(
                    || (card.clone(), record.clone()),
                    |(mut card, mut record)| {
                        purchase::refund(&mut card, &mut record, amount(2_500), TODAY)
                            .expect("a valid refund")
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, card_record, balance_buckets, write_off, refund);
criterion_main!(benches);
