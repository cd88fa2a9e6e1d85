//! A slow writer whose index claim is taken over must not write afterwards
//! (issue 12, "fenced takeovers"). Instance A's Redis connections pass a
//! TCP proxy that delays every chunk; instance B's are not delayed. A
//! claims the contact (or the mobile number), and while its next write is
//! still on the wire, B finds the claim older than the lease — by Redis'
//! clock — and takes it over. Without a fence, A's late write lands too:
//! two cards bound to one contact, or two contacts with one number.
//!
//! On one redis-server, A alone goes through the proxy. A cluster hands
//! its clients the nodes' addresses, so the test starts a cluster of its
//! own whose nodes announce a proxy each (`cluster-announce-port`): both
//! instances go through the proxies, and a proxy holds back only the
//! connections that log in as A's Redis user. The memory store has no
//! wire to delay: the tests are ignored there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::redis_server::RedisCluster;
use crate::helpers::*;

/// The slow instance's Redis user on the cluster: a proxy delays the
/// connections that log in with it.
const SLOW_USER: &str = "fencing-slow";

/// Forwards TCP to `target`, holding each chunk of the delayed connections
/// back `delay` ms: every connection, or (with `only_user`) those whose
/// first bytes log in as that user.
struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl DelayProxy {
    async fn start(target: String, only_user: Option<&'static str>) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let delayed = Arc::new(AtomicBool::new(only_user.is_none()));
                tokio::spawn(pump(cr, sw, delay.clone(), delayed.clone(), only_user));
                tokio::spawn(pump(sr, cw, delay.clone(), delayed, None));
            }
        });
        DelayProxy { port, delay_ms }
    }

    fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`; with `login`, the first chunk (the client's
/// AUTH, sent first on every connection) says whether the connection is
/// delayed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
    delayed: Arc<AtomicBool>,
    mut login: Option<&'static str>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(user) = login.take() {
            let first = &buf[..n];
            let found = first.windows(user.len()).any(|w| w == user.as_bytes());
            delayed.store(found, Ordering::SeqCst);
        }
        let ms = delay.load(Ordering::SeqCst);
        if ms > 0 && delayed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const LEASE_MS: i64 = 200;
const DELAY_MS: u64 = 400;

/// What a fencing test runs on: two instances, the proxies that slow one
/// of them down, and a Redis connection of the test's own.
struct Rig {
    slow: TestApp,
    fast: TestApp,
    proxies: Vec<DelayProxy>,
    prefix: String,
    conn: TestConn,
    _cluster: Option<RedisCluster>,
}

fn set_delay(proxies: &[DelayProxy], ms: u64) {
    proxies.iter().for_each(|p| p.set_delay(ms));
}

enum TestConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl TestConn {
    async fn exists(&mut self, key: &str) -> bool {
        let cmd = redis::cmd("EXISTS").arg(key).clone();
        match self {
            TestConn::Single(c) => cmd.query_async(c).await.unwrap(),
            TestConn::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Two instances on one store and prefix, both with a short claim lease:
/// on the suite's redis-server (A through a proxy), or on a cluster of the
/// test's own (see the module's doc). Run (`--include-ignored`) on the
/// memory store, the test fails rather than pass by skipping.
async fn slow_and_fast() -> Rig {
    let prefix = unique_prefix();
    let (slow_urls, fast_urls, proxies, cluster) = match backend() {
        Backend::Redis { urls, .. } if urls.len() == 1 => {
            let proxy = DelayProxy::start(host_port(&urls[0]), None).await;
            let proxied = format!("redis://127.0.0.1:{}/0", proxy.port);
            (vec![proxied], urls.clone(), vec![proxy], None)
        }
        Backend::Redis { .. } => {
            let (cluster, proxies) = proxied_cluster().await;
            let slow = proxies
                .iter()
                .map(|p| format!("redis://{SLOW_USER}:{SLOW_USER}@127.0.0.1:{}/", p.port))
                .collect();
            (slow, cluster.urls(), proxies, Some(cluster))
        }
        Backend::Memory => {
            panic!(
                "fencing: needs LOYALTY_TEST_BACKEND=redis or cluster (a proxy in front of Redis)"
            )
        }
    };
    let p = prefix.clone();
    let slow = spawn_with(move |s| {
        use_backend(s, &p);
        s.store.url = slow_urls;
        s.store.pool_size = 1;
        s.store.command_timeout_ms = 10_000;
        s.engine.claim_lease_ms = LEASE_MS;
    })
    .await;
    let p = prefix.clone();
    let urls = fast_urls.clone();
    let fast = spawn_with(move |s| {
        use_backend(s, &p);
        s.store.url = urls;
        s.engine.claim_lease_ms = LEASE_MS;
    })
    .await;
    let conn = if fast_urls.len() == 1 {
        TestConn::Single(
            redis::Client::open(fast_urls[0].as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
    } else {
        TestConn::Cluster(
            redis::cluster::ClusterClient::new(fast_urls)
                .unwrap()
                .get_async_connection()
                .await
                .unwrap(),
        )
    };
    Rig {
        slow,
        fast,
        proxies,
        prefix,
        conn,
        _cluster: cluster,
    }
}

/// A 3-master cluster whose nodes announce a proxy each, with the slow
/// instance's user on every node; once every node names the proxies.
async fn proxied_cluster() -> (RedisCluster, Vec<DelayProxy>) {
    let dir = tempfile::Builder::new()
        .prefix("loyalty-test-fencing-")
        .tempdir()
        .unwrap()
        .keep();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start(&dir, true))
        .await
        .unwrap();
    let mut proxies = Vec::new();
    for node in &cluster.nodes {
        proxies.push(DelayProxy::start(format!("127.0.0.1:{}", node.port), Some(SLOW_USER)).await);
    }
    for (node, proxy) in cluster.nodes.iter().zip(&proxies) {
        let user = format!("ACL SETUSER {SLOW_USER} on >{SLOW_USER} ~* &* +@all");
        let set = format!("CONFIG SET cluster-announce-port {}", proxy.port);
        for cmd in [user, set] {
            let reply = node.command(&cmd);
            assert!(
                reply.as_deref().is_some_and(|r| r.starts_with("+OK")),
                "{cmd}: {reply:?}"
            );
        }
    }
    let started = Instant::now();
    loop {
        let announced = cluster.nodes.iter().all(|node| {
            let nodes = node.command("CLUSTER NODES").unwrap_or_default();
            proxies
                .iter()
                .all(|p| nodes.contains(&format!(":{}@", p.port)))
        });
        if announced {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster's nodes never announced their proxies"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_ok();
    (cluster, proxies)
}

/// Waits until `key` exists (the slow instance's claim has landed).
async fn until_exists(conn: &mut TestConn, key: &str) {
    let started = Instant::now();
    loop {
        if conn.exists(key).await {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{key} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits past the lease, by the test's clock (Redis runs on this machine).
async fn past_the_lease() {
    tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 + 100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis behind a delaying proxy: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_slow_binding_taken_over_after_its_lease_never_lands() {
    let Rig {
        slow,
        fast,
        proxies,
        prefix,
        mut conn,
        _cluster,
    } = slow_and_fast().await;
    for round in 0..3 {
        let contact = fast.new_contact(true).await;
        let (x, _) = fast.card_in(State::IssuedUnbound).await;
        let (y, _) = fast.card_in(State::IssuedUnbound).await;

        set_delay(&proxies, DELAY_MS);
        let slow_bind = {
            let (client, url, x, mobile) = (
                slow.client.clone(),
                slow.url("/api/card/bindto"),
                x.clone(),
                contact.mobile.clone(),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .basic_auth(ADMIN, Some(password(ADMIN)))
                    .json(&json!({"Number": x, "MobileNumber": mobile}))
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            })
        };
        until_exists(
            &mut conn,
            &format!("{prefix}:contact-card:{{{}}}", contact.code),
        )
        .await;
        past_the_lease().await;
        let fast_answer = fast.bindto(ADMIN, &y, &contact.mobile).await;
        let slow_answer = slow_bind.await.unwrap();
        set_delay(&proxies, 0);

        fast_answer.ok();
        assert_eq!(
            slow_answer["Key"], "ContactBindToAnotherCardNumber",
            "round {round}: the slow bind, taken over, must lose: {slow_answer}"
        );
        let mut holders = Vec::new();
        for n in [&x, &y] {
            let b = fast.balance(n).await;
            b.ok();
            if b.body["Code"] == json!(contact.code) {
                holders.push(n.clone());
            }
        }
        assert_eq!(
            holders,
            vec![y.clone()],
            "round {round}: cards bound to the contact"
        );
        let by_phone = fast.balance_by_phone(&contact.mobile).await;
        assert_eq!(
            by_phone.body["Number"],
            json!(y),
            "round {round}: {}",
            by_phone.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis behind a delaying proxy: LOYALTY_TEST_BACKEND=redis|cluster with --include-ignored (scripts/test.sh)"]
async fn a_slow_contact_write_taken_over_after_its_lease_never_lands() {
    let Rig {
        slow,
        fast,
        proxies,
        prefix,
        mut conn,
        _cluster,
    } = slow_and_fast().await;
    for round in 0..3 {
        let mobile = unique_mobile();
        let (first, second) = (unique_code(), unique_code());

        set_delay(&proxies, DELAY_MS);
        let slow_create = {
            let (client, url, body) = (
                slow.client.clone(),
                slow.url("/api/contact"),
                json!({"Code": first, "MobileNumber": mobile}),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .basic_auth(POS, Some(password(POS)))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            })
        };
        until_exists(&mut conn, &format!("{prefix}:mobile:{{{mobile}}}")).await;
        past_the_lease().await;
        let fast_answer = fast
            .post(
                POS,
                "/api/contact",
                json!({"Code": second, "MobileNumber": mobile}),
            )
            .await;
        let slow_answer = slow_create.await.unwrap();
        set_delay(&proxies, 0);

        fast_answer.ok();
        assert_eq!(
            slow_answer["Key"], "MobileNumberBelongsToAnotherContact",
            "round {round}: the slow write, taken over, must lose: {slow_answer}"
        );
        let mut owners = Vec::new();
        for code in [&first, &second] {
            let c = fast.get(POS, &format!("/api/contact/{code}")).await;
            if c.key() == "OK" && c.body["MobileNumber"] == json!(mobile) {
                owners.push(code.clone());
            }
        }
        assert_eq!(
            owners,
            vec![second.clone()],
            "round {round}: contacts with the number"
        );
    }
}
