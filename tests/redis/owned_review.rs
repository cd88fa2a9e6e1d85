//! Review of the shards' owned card state (issue 20 item 1, branch `own`):
//! two instances on one Redis, the first owning a card's decoded state
//! (an answer and a write base), while Redis loses or replaces the card
//! behind it by ways the earlier tests do not take:
//!
//! - `DEBUG RELOAD NOSAVE`: Redis goes back to its last snapshot in place,
//!   with no restart and no connection lost (the tests on a restart and
//!   on `FLUSHALL` are in stale_base.rs). Redis says so on the tracking
//!   channel (a null invalidation, as for `FLUSHALL`); neither the first
//!   instance's answer nor its base may outlive it.
//! - Two instances granting and replaying the same bonuses at once, on one
//!   node and on the 3-master cluster: every bonus counted once on both.
//! - An older read returning last must not replace a newer owned answer.
//!
//! (The review's finding of a card whose keys are deleted by hand and
//! loaded again is a known limit, docs/redis.md: its test is on the
//! `review` branch, not here, since it fails.)

use std::time::Duration;

use serde_json::json;

use crate::redis_server::{free_port, RedisServer};
use crate::support::*;

/// The card's stored version (its hash's `v`).
fn version(redis: &RedisServer, prefix: &str, number: &str) -> u64 {
    let reply = redis
        .command(&format!("HGET {prefix}:card:{{{number}}} v"))
        .unwrap_or_default();
    // A bulk string: "$<len>\r\n<value>\r\n".
    reply
        .lines()
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no version in {reply:?}"))
}

/// Until `http` answers `want` for the card's bonuses: the instance has
/// taken in what Redis did (polled: a guard against a hang, not a timing
/// assertion; an instance that never does fails here).
async fn until_answers(http: &Http, number: &str, want: i64, what: &str) {
    let mut last = 0;
    for _ in 0..200 {
        last = active_bonuses(http, number).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: still answers {last}, Redis holds {want}");
}

/// `DEBUG RELOAD NOSAVE`: Redis back on its snapshot in place. The first
/// instance owns the card (its balance answered from owned state, its
/// last write a base); after the reload it must answer the snapshot's
/// card, and its next write must not land on what it remembers once the
/// second instance brought the card back up to that version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn an_owned_answer_and_base_never_outlive_a_debug_reload() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // No AOF: the reload loads the last snapshot.
    let redis = RedisServer::start(
        &dir.path().join("redis"),
        free_port(false),
        &["--enable-debug-command", "local"],
        None,
    );
    let prefix = format!("ownr{}", std::process::id());
    let (first, a) = start_app(owning_app_settings(vec![redis.url()], &prefix)).await;
    let (second, b) = start_app(owning_app_settings(vec![redis.url()], &prefix)).await;
    let number = card_number(910);
    let phone = mobile(910);
    a.load_cards(std::slice::from_ref(&number)).await;
    a.issue(&number).await.ok();
    a.create_contact(&format!("OR-{prefix}"), &phone).await.ok();
    a.bindto(&number, &phone).await.ok();
    a.active(&number).await.ok();
    manual_bonus(&a, &number, "seed", 10).await;
    assert!(redis.command("SAVE").unwrap_or_default().starts_with("+OK"));

    // Written after the snapshot: the reload loses it. The first
    // instance's balance is then answered from its owned state.
    manual_bonus(&a, &number, "lost", 100).await;
    assert_eq!(active_bonuses(&a, &number).await, 11_000);
    assert_eq!(active_bonuses(&a, &number).await, 11_000);
    let remembered = version(&redis, &prefix, &number);
    assert!(redis
        .command("DEBUG RELOAD NOSAVE")
        .unwrap_or_default()
        .starts_with("+OK"));
    assert!(version(&redis, &prefix, &number) < remembered);
    until_answers(&a, &number, 1_000, "the owner after DEBUG RELOAD").await;

    // The second instance writes the card back up to the version the
    // first remembers; then the first writes.
    let mut i = 0;
    while version(&redis, &prefix, &number) < remembered {
        manual_bonus(&b, &number, &format!("kept{i}"), 7).await;
        i += 1;
    }
    assert_eq!(version(&redis, &prefix, &number), remembered);
    manual_bonus(&a, &number, "next", 1).await;
    let want = 1_000 + i * 700 + 100;
    assert_eq!(
        active_bonuses(&b, &number).await,
        want,
        "the first instance wrote over the second's bonuses, on a card Redis had lost"
    );
    until_answers(&a, &number, want, "the owner after its write").await;
    first.stop();
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn two_owners_granting_and_replaying_at_once_count_every_bonus_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(&dir.path().join("redis"), free_port(false), &[], None);
    race_of_two_owners(vec![redis.url()], &format!("ownc{}", std::process::id())).await;
}

/// The same on the 3-master cluster (a card's write and its PurchaseId's
/// claim on different masters, one tracking connection per master).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn two_owners_on_a_cluster_count_every_bonus_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = crate::redis_server::RedisCluster::start(dir.path(), false);
    race_of_two_owners(cluster.urls(), &format!("owncc{}", std::process::id())).await;
}

async fn race_of_two_owners(urls: Vec<String>, prefix: &str) {
    let (first, a) = start_app(owning_app_settings(urls.clone(), prefix)).await;
    let (second, b) = start_app(owning_app_settings(urls, prefix)).await;
    let cards: Vec<String> = (0..6).map(|i| card_number(930 + i)).collect();
    for (i, number) in cards.iter().enumerate() {
        let phone = mobile(930 + i as u64);
        a.load_cards(std::slice::from_ref(number)).await;
        a.issue(number).await.ok();
        a.create_contact(&format!("OC{i}-{prefix}"), &phone)
            .await
            .ok();
        a.bindto(number, &phone).await.ok();
        a.active(number).await.ok();
        // Both instances own the card before the race.
        assert_eq!(active_bonuses(&a, number).await, 0);
        assert_eq!(active_bonuses(&b, number).await, 0);
    }
    let instances = [&a, &b];
    let ops: Vec<(usize, usize, i64)> = (0..240)
        .map(|n| (n % cards.len(), n % 2, (n % 5 + 1) as i64))
        .collect();
    let results =
        futures_util::future::join_all(ops.iter().enumerate().map(|(n, &(c, i, amount))| {
            let cards = &cards;
            async move {
                let number = &cards[c];
                let id = format!("race{n}");
                let body =
                    json!({"Number": number, "OperationId": id, "Amount": amount, "TypeCode": 0});
                let mut answers = Vec::new();
                // Sent to one instance, then replayed on the other.
                for http in [instances[i], instances[1 - i]] {
                    let mut tries = 0;
                    loop {
                        let r = http.post("marketer", "/api/card/bonus", body.clone()).await;
                        if r.status == 503 && tries < 200 {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                        answers.push((r.status, r.body.to_string()));
                        break;
                    }
                }
                (c, amount, answers)
            }
        }))
        .await;
    let mut want = vec![0i64; cards.len()];
    for (c, amount, answers) in &results {
        assert!(
            answers.iter().all(|(s, _)| *s == 200),
            "card {}: {answers:?}",
            cards[*c]
        );
        assert_eq!(
            answers[0].1, answers[1].1,
            "the replay answers as the first time"
        );
        want[*c] += amount * 100;
    }
    for (c, number) in cards.iter().enumerate() {
        assert_eq!(
            active_bonuses(&b, number).await,
            want[c],
            "card {number} on B"
        );
        until_answers(&a, number, want[c], "A").await;
        until_answers(&b, number, want[c], "B").await;
    }
    first.stop();
    second.stop();
}

/// The first instance's view of one store: every call goes to the shared
/// store (the "Redis" both instances write), but the coherence feed is
/// this instance's own, told of another instance's write only when the
/// test says its invalidation arrived (a tracking channel's lag, made
/// long). The first `get_card` of a card can be held after it read, as a
/// slow reply is.
struct LaggingFeed {
    inner: std::sync::Arc<dyn loyalty::store::Store>,
    feed: loyalty::store::Coherence,
    /// Taken by the first read: (it read, let it return).
    hold: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
}

#[async_trait::async_trait]
impl loyalty::store::HealthStore for LaggingFeed {
    async fn ping(&self) -> Result<(), loyalty::store::StoreError> {
        self.inner.ping().await
    }
    async fn replicated(
        &self,
        number: &loyalty::domain::CardNumber,
    ) -> Result<(), loyalty::store::StoreError> {
        self.inner.replicated(number).await
    }
    fn coherence(&self) -> Option<&loyalty::store::Coherence> {
        Some(&self.feed)
    }
}

#[async_trait::async_trait]
impl loyalty::store::CardStore for LaggingFeed {
    async fn get_card(
        &self,
        number: &loyalty::domain::CardNumber,
    ) -> Result<Option<loyalty::store::Versioned<loyalty::domain::Card>>, loyalty::store::StoreError>
    {
        let read = self.inner.get_card(number).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some((done, resume)) = hold {
            done.send(()).ok();
            resume.await.ok();
        }
        read
    }
    async fn update_card(
        &self,
        card: &loyalty::domain::Card,
        v: u64,
        entry: &loyalty::domain::HistoryEntry,
    ) -> Result<loyalty::store::Cas, loyalty::store::StoreError> {
        let cas = self.inner.update_card(card, v, entry).await;
        // Our own write: the store drops what it reported (as the Redis
        // store's `forget` does), whatever the feed says.
        self.feed.card_changed(card.number.as_str());
        cas
    }
    async fn update_card_with(
        &self,
        card: &loyalty::domain::Card,
        v: u64,
        entry: Option<&loyalty::domain::HistoryEntry>,
        records: &[loyalty::store::CardRecordWrite],
        ttl: u64,
    ) -> Result<loyalty::store::Cas, loyalty::store::StoreError> {
        let cas = self
            .inner
            .update_card_with(card, v, entry, records, ttl)
            .await;
        self.feed.card_changed(card.number.as_str());
        cas
    }
    async fn commit_purchase(
        &self,
        write: &loyalty::store::PurchaseWrite<'_>,
    ) -> Result<loyalty::store::PurchaseCommit, loyalty::store::StoreError> {
        let done = self.inner.commit_purchase(write).await;
        self.feed.card_changed(write.card.number.as_str());
        done
    }
    async fn card_history(
        &self,
        number: &loyalty::domain::CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<loyalty::store::HistoryPage, loyalty::store::StoreError> {
        self.inner.card_history(number, before, limit).await
    }
}

loyalty::forward_records!(LaggingFeed, |s| s.inner);
loyalty::forward_contacts!(LaggingFeed, |s| s.inner);
loyalty::forward_bulk!(LaggingFeed, |s| s.inner);

fn manual(
    number: &loyalty::domain::CardNumber,
    id: &str,
    hundredths: i64,
) -> loyalty::engine::Command {
    loyalty::engine::Command::ManualBonus(loyalty::engine::ManualBonusRequest {
        actor: crate::engine_settings::admin(),
        number: number.clone(),
        operation_id: id.to_owned(),
        amount: loyalty::domain::Amount::from_hundredths(hundredths).expect("an amount"),
        bonus_type: loyalty::domain::BonusType::ALL[0],
        active_from: None,
        expire_date: None,
        comment: None,
    })
}

async fn owned_balance(ops: &loyalty::engine::Ops, number: &loyalty::domain::CardNumber) -> i64 {
    match ops
        .execute(loyalty::engine::Command::Balance {
            number: number.clone(),
        })
        .await
        .expect("a balance")
    {
        loyalty::engine::Reply::Balance(view) => view
            .card
            .ledger
            .lots
            .iter()
            .map(|l| l.amount.hundredths())
            .sum(),
        other => panic!("not a balance: {other:?}"),
    }
}

/// Two reads of one card on the first instance while another instance's
/// write is on its way to it (its invalidation not yet arrived): the
/// first read began before the write and returns last, the second began
/// after and answered the new balance. The first read's older card must
/// not replace the newer one as the owned answer: once an instance has
/// answered a balance, it must not answer an older one (the Redis
/// store's cache on main kept only the latest miss's fill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_returns_last_does_not_replace_a_newer_owned_answer() {
    use loyalty::domain::{
        Card, CardNumber, CardType, Category, ContactCode, ContactPatch, MobileNumber,
    };
    use loyalty::engine::{Command, Ops};
    use loyalty::store::memory::MemoryStore;
    use loyalty::store::{Coherence, Store};
    use std::sync::Arc;

    let shared: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let settings = || crate::engine_settings::ops_settings(30_000, 3600);
    // The other instance, on the shared store.
    let b = Ops::new(shared.clone(), settings());
    let number = CardNumber::from_trusted("4100000000951".into());
    shared
        .insert_cards(&[Card::new(
            number.clone(),
            Category::Plastic,
            CardType::Bonus,
        )])
        .await
        .expect("inserted");
    let mobile = MobileNumber::parse("79170000951").expect("a mobile");
    for step in [
        Command::Issue {
            actor: crate::engine_settings::admin(),
            number: number.clone(),
        },
        Command::UpsertContact {
            code: ContactCode::from_trusted("OW951".into()),
            patch: ContactPatch {
                name: Some("n".into()),
                mobile: Some(mobile.clone()),
                ..Default::default()
            },
        },
        Command::BindTo {
            actor: crate::engine_settings::admin(),
            number: number.clone(),
            mobile,
        },
        Command::Active {
            actor: crate::engine_settings::admin(),
            number: number.clone(),
        },
    ] {
        b.execute(step).await.expect("set up");
    }
    b.execute(manual(&number, "seed", 10_000))
        .await
        .expect("seed");

    let feed = Coherence::new();
    feed.vouch(std::time::Instant::now() + Duration::from_secs(3600));
    feed.enable();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let store = Arc::new(LaggingFeed {
        inner: shared.clone(),
        feed,
        hold: std::sync::Mutex::new(Some((done_tx, resume_rx))),
    });
    let a = Arc::new(Ops::new(store.clone(), settings()));

    // The first read takes its stamp and reads 100.00, then is held.
    let early = tokio::spawn({
        let (a, number) = (a.clone(), number.clone());
        async move { owned_balance(&a, &number).await }
    });
    done_rx.await.expect("the first read read");
    // The other instance's write; its invalidation has not reached us.
    b.execute(manual(&number, "on-b", 1_000))
        .await
        .expect("B's bonus");
    // The second read: 110.00, answered.
    assert_eq!(
        owned_balance(&a, &number).await,
        11_000,
        "a read after B's write"
    );
    // The first read returns last (the answer it gives is its own, from
    // before the write); then a balance again.
    resume_tx.send(()).expect("resumed");
    assert_eq!(early.await.expect("joined"), 10_000);
    let again = owned_balance(&a, &number).await;
    assert_eq!(
        again, 11_000,
        "answered 110.00, then 100.00: an older read replaced the owned answer"
    );
    // Once the invalidation arrives, the card is read again.
    store.feed.card_changed(number.as_str());
    assert_eq!(owned_balance(&a, &number).await, 11_000);
}
