//! The HTTP layer's hot pieces in isolation: router matching, parameter
//! parsing, the credential cache hit, and the balance answer's rendering.
//!
//! `cargo bench --bench api`; `cargo test --benches` runs each once.

use std::collections::HashMap;
use std::hint::black_box;

use actix_web::http::Method;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use time::macros::date;

use loyalty::api::auth::{hash_password, Authenticator};
use loyalty::api::params::Params;
use loyalty::api::router::{Match, Router};
use loyalty::api::users::User;
use loyalty::api::views;
use loyalty::config::AuthSettings;
use loyalty::domain::{
    Amount, BonusType, Card, CardNumber, CardStatus, CardType, Category, Contact, ContactCode,
    MobileNumber, Role,
};
use loyalty::engine::BalanceView;

fn router(c: &mut Criterion) {
    let router = Router::new();
    let mut g = c.benchmark_group("router");
    for (name, method, path) in [
        (
            "balance by number",
            Method::GET,
            "/api/card/balance/by/7100000000001",
        ),
        (
            "balance by phone",
            Method::GET,
            "/api/card/balance/by/phone/79900000001",
        ),
        ("confirm", Method::POST, "/api/purchase/confirm"),
        ("mixed case", Method::GET, "/API/Card/Issue"),
        ("last route", Method::GET, "/metrics"),
        ("not found", Method::GET, "/api/card/nope/x"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| match router.find(black_box(&method), black_box(path)) {
                Match::Found(r, captures) => (r.template.len(), captures.len()),
                Match::WrongMethod(r, _) => (r.template.len(), 0),
                Match::NotFound => (0, 0),
            })
        });
    }
    g.finish();
}

fn params(c: &mut Criterion) {
    let mut g = c.benchmark_group("params");
    let confirm = br#"{"Number":"7100000000001","PurchaseId":"lt-1a2b3c4d-7-1234","Amount":123.45,"BonusToPay":3.5}"#;
    g.bench_function("confirm body", |b| {
        b.iter(|| {
            let p = Params::from_json(black_box(confirm)).expect("valid JSON");
            p.require(&["Number", "PurchaseId", "Amount"])
                .expect("all there");
            (
                p.text("Number").expect("text"),
                p.id("PurchaseId").expect("id"),
                p.amount("Amount").expect("amount"),
                p.amount("BonusToPay").expect("amount"),
            )
        })
    });
    g.bench_function("query", |b| {
        b.iter(|| {
            let p = Params::from_query(black_box("Number=7100000000001&limit=10&cursor=20"))
                .expect("valid");
            (p.text("number").expect("text"), p.page().expect("page"))
        })
    });
    g.finish();
}

fn credential_cache(c: &mut Criterion) {
    loyalty::metrics::install();
    let user = User {
        login: "pos-0001".into(),
        role: Role::Pos,
        password_hash: Some(hash_password("till-secret").expect("hashes")),
        token_sha256: None,
        client_cert_cn: None,
        demo: false,
    };
    let auth = Authenticator::new(
        HashMap::from([(user.login.clone(), user)]),
        AuthSettings {
            users_file: "unused".into(),
            cache_capacity: 100_000,
            reload_check_ms: 0,
            ..loyalty::config::Settings::defaults().auth
        },
    );
    let header = "Basic cG9zLTAwMDE6dGlsbC1zZWNyZXQ="; // pos-0001:till-secret
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    rt.block_on(auth.authenticate(Some(header), None))
        .expect("the first login verifies");
    c.bench_function("credential cache hit", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(Some(black_box(header)), None))
                .expect("cached")
        })
    });
}

fn balance_view(c: &mut Criterion) {
    let today = date!(2026 - 06 - 01);
    let mut g = c.benchmark_group("balance_view");
    for lots in [0usize, 10, 100, 1_000] {
        let mut card = Card::new(
            CardNumber::from_trusted("7100000000001".into()),
            Category::Plastic,
            CardType::Bonus,
        );
        card.status = CardStatus::Active;
        card.contact = Some(ContactCode::from_trusted("LT-1".into()));
        for i in 0..lots {
            let from = today - time::Duration::days(300 - (i % 300) as i64);
            card.ledger.accrue(
                Amount::from_hundredths(100 + i as i64).expect("valid"),
                BonusType::Cash,
                from,
                Some(from + time::Duration::days(365)),
                loyalty::domain::ledger::LotSource::Bonus,
            );
        }
        let view = BalanceView {
            card,
            contact: Some(Contact {
                code: ContactCode::from_trusted("LT-1".into()),
                name: "Olga".into(),
                mobile: Some(MobileNumber::from_trusted("79035550100".into())),
                email: String::new(),
                birth_date: "1985-03-08".into(),
                gender: String::new(),
                city: String::new(),
                mobile_claim: None,
            }),
        };
        // The fields of the answer and their JSON, as the server sends them.
        g.bench_with_input(BenchmarkId::from_parameter(lots), &view, |b, view| {
            b.iter(|| {
                serde_json::to_vec(&views::balance(
                    black_box(view),
                    today.midnight().assume_utc(),
                ))
                .expect("encodes")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, router, params, credential_cache, balance_view);
criterion_main!(benches);
