//! Redis stopped in the middle of traffic: every answer is either a normal
//! one or 503 `StoreUnavailable` (never a 500, never a hang), `/ready` is
//! 503 while Redis is away, and when Redis returns the same server instance
//! serves again without a restart. Afterwards no half-done bind or contact
//! is visible, and once the failed requests are retried (they are safe to
//! retry) every index entry is confirmed by its record.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use loyalty::config::Settings;
use loyalty::RunningApp;
use serde_json::json;
use tokio::sync::Notify;

use crate::support::*;

const ITEMS: u64 = 48;
const WORKERS: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    CreateContact,
    Bind,
}

/// Runs one step for item `i`; returns its answer.
async fn run(http: &Http, step: Step, i: u64) -> Answer {
    match step {
        Step::CreateContact => {
            http.create_contact(&format!("F-{}-{i}", std::process::id()), &mobile(100 + i))
                .await
        }
        Step::Bind => http.bindto(&card_number(100 + i), &mobile(100 + i)).await,
    }
}

#[track_caller]
fn ok_or_unavailable(a: &Answer) -> bool {
    match (a.status, a.key()) {
        (200, "OK") => true,
        (503, "StoreUnavailable") => false,
        _ => panic!(
            "neither OK nor 503 StoreUnavailable: {} {}",
            a.status, a.body
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn redis_down_mid_traffic_answers_503_and_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut redis = crate::support::start_aof_always(&dir.path().join("redis"));
    let prefix = format!("faults{}", std::process::id());
    let mut settings = Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.engine.threads = 2;
    settings.engine.shards = 4;
    settings.auth.users_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml");
    settings.demo.data_file = String::new();
    settings.store.backend = loyalty::config::StoreBackend::Redis;
    settings.store.url = vec![redis.url()];
    settings.store.key_prefix = prefix.clone();
    settings.store.command_timeout_ms = 500;
    settings.store.connect_timeout_ms = 200;
    let server = tokio::task::spawn_blocking(move || RunningApp::spawn(settings))
        .await
        .expect("join")
        .expect("the server starts");
    let http = Arc::new(Http::new(server.port));

    let cards: Vec<String> = (0..ITEMS).map(|i| card_number(100 + i)).collect();
    http.load_cards(&cards).await;
    for c in &cards {
        http.issue(c).await.ok();
    }

    // Workers create a contact and bind its card, item after item; Redis is
    // killed once a quarter of the items are through.
    let quarter = Arc::new(Notify::new());
    let down = Arc::new(AtomicBool::new(false));
    let workers = (0..WORKERS).map(|w| {
        let http = http.clone();
        let quarter = quarter.clone();
        let down = down.clone();
        async move {
            let mut failed = Vec::new();
            let mut oks_while_down = 0;
            for i in (w..ITEMS).step_by(WORKERS as usize) {
                if w == 0 && i == ITEMS / 4 {
                    quarter.notify_one();
                }
                for step in [Step::CreateContact, Step::Bind] {
                    let was_down = down.load(Ordering::SeqCst);
                    let a = run(&http, step, i).await;
                    if ok_or_unavailable(&a) {
                        if was_down {
                            oks_while_down += 1;
                        }
                    } else {
                        failed.push((step, i));
                    }
                }
            }
            (failed, oks_while_down)
        }
    });
    let killer = {
        let quarter = quarter.clone();
        let down = down.clone();
        async move {
            quarter.notified().await;
            tokio::task::block_in_place(|| redis.kill9());
            // Set after the kill: a request that starts later cannot succeed.
            down.store(true, Ordering::SeqCst);
            redis
        }
    };
    let (results, mut redis) = tokio::join!(join_all(workers), killer);
    let failed: Vec<(Step, u64)> = results.iter().flat_map(|(f, _)| f.clone()).collect();
    let oks_while_down: usize = results.iter().map(|(_, n)| n).sum();
    assert_eq!(oks_while_down, 0, "nothing succeeds while Redis is down");
    assert!(
        !failed.is_empty(),
        "Redis went down before the traffic ended"
    );
    eprintln!(
        "{} of {} requests answered 503 while Redis was down",
        failed.len(),
        2 * ITEMS
    );

    // Still down: reads and /ready say so.
    assert_eq!(http.ready().await, 503);
    let a = http.balance(&cards[0]).await;
    assert_eq!((a.status, a.key()), (503, "StoreUnavailable"), "{}", a.body);

    // Back: the same server instance recovers by itself.
    tokio::task::block_in_place(|| redis.restart());
    http.wait_ready().await;

    // Before any retry: no half-done bind shows up as a binding. A contact
    // the API finds by phone either has no card, or a card that names it.
    for i in 0..ITEMS {
        let a = http.balance_by_phone(&mobile(100 + i)).await;
        match a.key() {
            "OK" => assert_eq!(a.body["Number"], json!(card_number(100 + i)), "{}", a.body),
            other => assert_eq!(other, "CannotFindMobileNumber", "{}", a.body),
        }
        let b = http.balance(&card_number(100 + i)).await;
        b.ok();
        if b.body["MobileNumber"] != json!("") {
            assert_eq!(b.body["MobileNumber"], json!(mobile(100 + i)), "{}", b.body);
        }
    }

    // Retrying what failed completes it (a write whose outcome was unknown
    // is safe to repeat).
    for (step, i) in failed {
        run(&http, step, i).await.ok();
    }
    for i in 0..ITEMS {
        let a = http.balance_by_phone(&mobile(100 + i)).await;
        a.ok();
        assert_eq!(a.body["Number"], json!(card_number(100 + i)), "{}", a.body);
    }
    let problems = dangling_index_entries(&redis.url(), &prefix);
    assert!(
        problems.is_empty(),
        "index entries not confirmed: {problems:#?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_cluster_master_down_answers_503_and_the_cluster_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut cluster = crate::redis_server::RedisCluster::start_with(
        dir.path(),
        false,
        crate::support::AOF_ALWAYS,
    );
    let mut settings = Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.engine.threads = 2;
    settings.engine.shards = 4;
    settings.auth.users_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml");
    settings.demo.data_file = String::new();
    settings.store.backend = loyalty::config::StoreBackend::Redis;
    settings.store.url = cluster.urls();
    settings.store.key_prefix = format!("cfaults{}", std::process::id());
    settings.store.command_timeout_ms = 500;
    settings.store.connect_timeout_ms = 200;
    let server = tokio::task::spawn_blocking(move || RunningApp::spawn(settings))
        .await
        .expect("join")
        .expect("the server starts");
    let http = Http::new(server.port);
    // Enough cards that every master holds some.
    let cards: Vec<String> = (0..30).map(|i| card_number(500 + i)).collect();
    http.load_cards(&cards).await;
    for c in &cards {
        http.issue(c).await.ok();
    }

    tokio::task::block_in_place(|| cluster.nodes[0].kill9());
    let mut unavailable = 0;
    for c in &cards {
        let a = http.balance(c).await;
        if !ok_or_unavailable(&a) {
            unavailable += 1;
        }
        let a = http.active(c).await;
        match (a.status, a.key()) {
            // Issued but unbound: the rule answers, if the store does.
            (409, "StatusError") | (503, "StoreUnavailable") => {}
            _ => panic!("unexpected: {} {}", a.status, a.body),
        }
    }
    assert!(
        unavailable > 0,
        "the cards of the dead master are unavailable"
    );
    assert_eq!(http.ready().await, 503);

    tokio::task::block_in_place(|| {
        cluster.nodes[0].restart();
        cluster.wait_ok();
    });
    http.wait_ready().await;
    for c in &cards {
        let a = http.balance(c).await;
        // A command may still meet a connection from before the outage
        // once; the next one is served.
        if a.status == 503 {
            http.balance(c).await.ok();
        } else {
            a.ok();
            assert_eq!(a.body["StatusName"], json!("Issued"), "{}", a.body);
        }
    }
    server.stop();
}
