//! A server started while its Redis is down starts anyway, answers 503
//! `StoreUnavailable` (and `/ready` 503) until Redis answers, then serves,
//! demo data included (issue 13, item 5). The memory store is always there:
//! nothing to test on it, so the test is ignored unless a Redis backend
//! runs it.

use std::time::{Duration, Instant};

use crate::helpers::redis_server::{free_port, RedisCluster, RedisServer};
use crate::helpers::*;

/// A Redis (or cluster) of this test's own, stopped: `start` brings it back
/// on the same ports.
enum Stopped {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Stopped {
    fn new(cluster: bool) -> (Stopped, Vec<String>) {
        let dir = tempfile::Builder::new()
            .prefix("loyalty-test-late-redis-")
            .tempdir()
            .unwrap()
            .keep();
        if cluster {
            let mut c = RedisCluster::start(&dir, true);
            let urls = c.urls();
            c.nodes.iter_mut().for_each(RedisServer::kill9);
            (Stopped::Cluster(c), urls)
        } else {
            let mut s = RedisServer::start(&dir, free_port(false), &[], Some(&dir));
            let urls = vec![s.url()];
            s.kill9();
            (Stopped::Single(s), urls)
        }
    }

    fn start(&mut self) {
        match self {
            Stopped::Single(s) => s.restart(),
            Stopped::Cluster(c) => {
                c.nodes.iter_mut().for_each(RedisServer::restart);
                c.wait_ok();
            }
        }
    }
}

/// Probes until OK; meanwhile only the `waiting` Keys may answer.
async fn until_ok(what: &str, waiting: &[&str], mut probe: impl AsyncFnMut() -> Resp) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = probe().await;
        if r.status == 200 || Instant::now() > deadline {
            assert_eq!(r.status, 200, "{what} never answered OK: {}", r.body);
            return r;
        }
        assert!(waiting.contains(&r.key()), "{what}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Redis: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_server_started_without_redis_answers_503_until_redis_answers_then_serves() {
    let cluster = match backend() {
        Backend::Memory => panic!("needs LOYALTY_TEST_BACKEND=redis or cluster"),
        Backend::Redis { urls, .. } => urls.len() > 1,
    };
    let (mut redis, urls) = tokio::task::spawn_blocking(move || Stopped::new(cluster))
        .await
        .unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let app = spawn_with(|s| {
        s.store.url = urls;
        s.store.connect_timeout_ms = 200;
        s.store.command_timeout_ms = 500;
        s.demo.data_file = root.join("config/demo-data.json").display().to_string();
        s.demo.load_into_redis = true;
    })
    .await;

    app.send(app.client.get(app.url("/health"))).await.ok();
    app.send(app.client.get(app.url("/ready")))
        .await
        .expect(503, "StoreUnavailable");
    app.balance("7000000000001")
        .await
        .expect(503, "StoreUnavailable");
    // Credentials and formats need no store.
    app.balance("12.3").await.expect(400, "InvalidCardNumber");

    let mut redis = tokio::task::spawn_blocking(move || {
        redis.start();
        redis
    })
    .await
    .unwrap();
    until_ok("/ready", &["StoreUnavailable"], async || {
        app.send(app.client.get(app.url("/ready"))).await
    })
    .await;
    // The demo data followed the store.
    let demo = until_ok(
        "the demo card",
        // Loaded by a background task that retries every 2 s at most.
        &["StoreUnavailable", "CannotFindCardNumber"],
        async || app.balance("7000000000001").await,
    )
    .await;
    assert_eq!(demo.body["StatusCode"], "0");
    let number = app.new_card().await;
    app.issue(POS, &number).await.ok();
    drop(app);
    tokio::task::spawn_blocking(move || match &mut redis {
        Stopped::Single(s) => s.kill9(),
        Stopped::Cluster(c) => c.nodes.iter_mut().for_each(RedisServer::kill9),
    })
    .await
    .unwrap();
}
