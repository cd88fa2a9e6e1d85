//! One engine command end to end on the memory store: through the shard
//! actor (routing, bounded queue, per-card ordering), the store's
//! conditional write and back. No HTTP.
//!
//! `cargo bench --bench engine`; `cargo test --benches` runs each once.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use loyalty::domain::contact::ContactField;
use loyalty::domain::purchase::BonusRules;
use loyalty::domain::{
    Actor, Amount, BonusType, Card, CardNumber, CardType, Category, ContactCode, ContactPatch,
    MobileNumber, Role,
};
use loyalty::engine::{
    Command, ConfirmRequest, Engine, EngineSettings, ManualBonusRequest, OpsSettings,
    PurchaseSettings, Reply,
};
use loyalty::store::instrumented::Instrumented;
use loyalty::store::memory::MemoryStore;

fn actor(role: Role) -> Actor {
    Actor {
        login: "bench".into(),
        role,
    }
}

fn amount(hundredths: i64) -> Amount {
    Amount::from_hundredths(hundredths).expect("valid")
}

async fn run(engine: &Engine, command: Command) -> Reply {
    engine.execute(command).await.expect("the command succeeds")
}

/// An Active Discount card (purchases write off without accruing, so the
/// ledger does not grow over the benchmark's iterations) with bonuses.
async fn active_card(engine: &Engine, number: &CardNumber) {
    engine
        .insert_cards(&[Card::new(
            number.clone(),
            Category::Plastic,
            CardType::Discount,
        )])
        .await
        .expect("inserted");
    let pos = actor(Role::Pos);
    let code = ContactCode::from_trusted("LT-bench".into());
    let mobile = MobileNumber::from_trusted("79900000001".into());
    run(
        engine,
        Command::Issue {
            actor: pos.clone(),
            number: number.clone(),
        },
    )
    .await;
    run(
        engine,
        Command::UpsertContact {
            code,
            patch: ContactPatch {
                name: Some("Bench".into()),
                mobile: Some(mobile.clone()),
                birth_date: Some("1990-01-01".into()),
                ..ContactPatch::default()
            },
        },
    )
    .await;
    run(
        engine,
        Command::BindTo {
            actor: pos.clone(),
            number: number.clone(),
            mobile,
        },
    )
    .await;
    run(
        engine,
        Command::Active {
            actor: pos,
            number: number.clone(),
        },
    )
    .await;
    run(
        engine,
        Command::ManualBonus(ManualBonusRequest {
            actor: actor(Role::Marketer),
            number: number.clone(),
            operation_id: "bench-bonus".into(),
            amount: amount(100_000_000),
            bonus_type: BonusType::Cash,
            active_from: None,
            expire_date: None,
            comment: None,
        }),
    )
    .await;
}

fn engine(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let number = CardNumber::from_trusted("7100000000001".into());
    let engine = system.block_on(async {
        let engine = Engine::start(
            Arc::new(Instrumented(Arc::new(MemoryStore::new()))),
            EngineSettings {
                shards: 8,
                threads: 2,
                shard_queue_capacity: 4096,
                cache_capacity: 1_000_000,
                ops: OpsSettings {
                    required_fields: vec![ContactField::Name, ContactField::BirthDate],
                    claim_lease_ms: 30_000,
                    purchases: PurchaseSettings {
                        rules: BonusRules {
                            accrual_bp: 500,
                            activation_delay_days: 14,
                            expiry_days: 365,
                            max_writeoff_bp: 5_000,
                            discount_bp: 300,
                            date_max_age_secs: 30 * 86_400,
                            date_max_ahead_secs: 86_400,
                        },
                        retention_secs: 3600,
                        hold_secs: 900,
                        hold_max_secs: 3600,
                    },
                },
            },
        );
        active_card(&engine, &number).await;
        engine
    });
    let mut g = c.benchmark_group("engine_memory");
    g.bench_function("balance", |b| {
        b.iter(|| {
            system
                .block_on(engine.balance(black_box(number.clone())))
                .expect("a balance")
        })
    });
    g.bench_function("calculate", |b| {
        b.iter(|| {
            system.block_on(run(
                &engine,
                Command::Calculate {
                    number: number.clone(),
                    amount: amount(10_000),
                    bonus_to_pay: amount(100),
                },
            ))
        })
    });
    let seq = AtomicU64::new(0);
    g.bench_function("confirm with write-off", |b| {
        b.iter(|| {
            let id = seq.fetch_add(1, Ordering::Relaxed);
            system.block_on(run(
                &engine,
                Command::Confirm(ConfirmRequest {
                    actor: actor(Role::Pos),
                    number: number.clone(),
                    purchase_id: format!("bench-{id}"),
                    amount: amount(10_000),
                    bonus_to_pay: amount(1),
                    date: None,
                }),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
