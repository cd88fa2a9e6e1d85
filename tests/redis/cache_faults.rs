//! The record cache across faults (issue 7): after Redis is flushed, after
//! the cache's invalidation connection is killed while the data changes
//! behind it, after Redis restarts empty, and after a cluster master is
//! killed and restarts empty, no read returns what Redis no longer holds.
//!
//! Each scenario first proves the cache serves (hits counted on /metrics
//! grow while the balance is read again), then makes Redis forget or change
//! the card behind the server's back, then reads: the first answer that is
//! not a 503 must already be the new truth, and so must every one after.
//! A short bounded wait is allowed only where the server cannot know yet
//! (the killed connection's loss is noticed within a heartbeat).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use loyalty::config::Settings;
use loyalty::RunningApp;

use crate::redis_server::{free_port, RedisCluster, RedisServer};
use crate::support::*;

fn settings(urls: Vec<String>, prefix: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.engine.threads = 2;
    settings.engine.shards = 4;
    settings.engine.cache_capacity = 10_000;
    settings.auth.users_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml");
    settings.demo.data_file = String::new();
    settings.store.backend = loyalty::config::StoreBackend::Redis;
    settings.store.url = urls;
    settings.store.key_prefix = prefix.to_owned();
    settings.store.command_timeout_ms = 500;
    settings.store.connect_timeout_ms = 200;
    settings
}

async fn start(settings: Settings) -> (RunningApp, Http) {
    let server = tokio::task::spawn_blocking(move || RunningApp::spawn(settings))
        .await
        .expect("join")
        .expect("the server starts");
    let http = Http::new(server.port);
    (server, http)
}

/// The sum of a counter's series whose line starts with `series`.
async fn metric(http: &Http, series: &str) -> f64 {
    let text = http
        .client
        .get(format!("{}/metrics", http.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("a body");
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the cache serves: reading a card again is a hit.
async fn assert_cached(http: &Http, card: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        http.balance(card).await.ok();
        let before = metric(http, "loyalty_owned_lookups_total{result=\"hit\"}").await;
        http.balance(card).await.ok();
        let after = metric(http, "loyalty_owned_lookups_total{result=\"hit\"}").await;
        if after > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never served card {card}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After a fault: reads of `card` until one is not a 503 (bounded by
/// `settle`); from then on every read must answer CannotFindCardNumber.
async fn assert_forgotten(http: &Http, card: &str, settle: Duration) {
    let deadline = Instant::now() + settle;
    loop {
        let a = http.balance(card).await;
        match (a.status, a.key()) {
            (503, _) => {}
            (404, "CannotFindCardNumber") => break,
            (200, "OK") if Instant::now() < deadline => {}
            _ => panic!(
                "card {card}: {} {} — Redis no longer holds it",
                a.status, a.body
            ),
        }
        assert!(Instant::now() < deadline, "card {card}: no answer in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..20 {
        let a = http.balance(card).await;
        assert_eq!(
            (a.status, a.key()),
            (404, "CannotFindCardNumber"),
            "card {card} came back from the cache: {}",
            a.body
        );
    }
}

async fn issued(http: &Http, cards: &[String]) {
    http.load_cards(cards).await;
    for c in cards {
        http.issue(c).await.ok();
    }
}

/// `CLIENT KILL` of every connection with tracking on (flag `t`).
fn kill_tracking_connections(redis: &RedisServer) -> usize {
    let list = redis.command("CLIENT LIST").unwrap_or_default();
    let ids: Vec<String> = list
        .lines()
        .filter(|l| {
            l.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('t')))
        })
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id=").map(str::to_owned))
        })
        .collect();
    for id in &ids {
        redis.command(&format!("CLIENT KILL ID {id}"));
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn single_node_flushall_client_kill_and_restart_never_serve_forgotten_cards() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut redis = RedisServer::start(&dir.path().join("redis"), free_port(false), &[], None);
    let prefix = format!("cachef{}", std::process::id());
    let (server, http) = start(settings(vec![redis.url()], &prefix)).await;

    // FLUSHALL: Redis says so (a null invalidation); everything goes.
    let cards: Vec<String> = (0..4).map(|i| card_number(700 + i)).collect();
    issued(&http, &cards).await;
    assert_cached(&http, &cards[0]).await;
    redis.command("FLUSHALL");
    assert_forgotten(&http, &cards[0], Duration::from_secs(2)).await;

    // The invalidation connection killed, and the card deleted right after
    // (its invalidation has nowhere to go): the loss is noticed, the cache
    // emptied, and the deletion is seen.
    issued(&http, &cards).await;
    assert_cached(&http, &cards[1]).await;
    assert!(
        kill_tracking_connections(&redis) >= 1,
        "no tracking connection found"
    );
    redis.command(&format!("DEL {prefix}:card:{{{}}}", cards[1]));
    assert_forgotten(&http, &cards[1], Duration::from_secs(3)).await;

    // Redis restarted empty (no persistence): the connection loss empties
    // the cache before anything is read from the new Redis.
    issued(&http, &cards).await;
    assert_cached(&http, &cards[2]).await;
    tokio::task::block_in_place(|| redis.restart());
    assert_forgotten(&http, &cards[2], Duration::from_secs(10)).await;
    assert_forgotten(&http, &cards[3], Duration::from_secs(2)).await;
    assert!(metric(&http, "loyalty_cache_flushes_total").await >= 3.0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_cluster_master_killed_and_restarted_empty_never_serves_its_cards_from_the_cache() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // No persistence: the restarted master has kept its slots (nodes.conf)
    // but none of its data.
    let mut cluster = RedisCluster::start_with(dir.path(), false, &[]);
    let prefix = format!("cachec{}", std::process::id());
    let (server, http) = start(settings(cluster.urls(), &prefix)).await;
    // Enough cards that every master holds some.
    let cards: Vec<String> = (0..30).map(|i| card_number(800 + i)).collect();
    issued(&http, &cards).await;
    for c in &cards {
        http.balance(c).await.ok();
    }
    assert_cached(&http, &cards[0]).await;

    tokio::task::block_in_place(|| {
        cluster.nodes[0].kill9();
        cluster.nodes[0].restart();
        cluster.wait_ok();
    });
    // Which cards lived on the killed master: Redis no longer has them.
    let mut lost = Vec::new();
    for c in &cards {
        let key = format!("{prefix}:card:{{{c}}}");
        let here = cluster.nodes[0]
            .command(&format!("EXISTS {key}"))
            .unwrap_or_default();
        // A key of another master answers MOVED here.
        if here.starts_with(':') {
            lost.push(c.clone());
        }
    }
    assert!(!lost.is_empty(), "no card lived on the killed master");
    for c in &lost {
        assert_forgotten(&http, c, Duration::from_secs(15)).await;
    }
    // The others are still there and still served.
    for c in cards.iter().filter(|c| !lost.contains(c)) {
        let a = http.balance(c).await;
        if a.status != 503 {
            a.ok();
        }
    }
    server.stop();
}
