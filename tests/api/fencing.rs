//! A slow writer whose index claim is taken over must not write afterwards
//! (issue 12, "fenced takeovers"). Instance A reaches Redis through a TCP
//! proxy that delays every chunk; instance B talks to Redis directly. A
//! claims the contact (or the mobile number), and while its next write is
//! still on the wire, B finds the claim older than the lease — by Redis'
//! clock — and takes it over. Without a fence, A's late write lands too:
//! two cards bound to one contact, or two contacts with one number.
//!
//! Single redis-server only: a cluster hands its clients the nodes' real
//! addresses, which a proxy in front of one seed cannot stand in for. On
//! the memory store there is nothing to put a proxy in front of.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// Forwards TCP to `target`, holding each chunk back `delay` ms.
struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl DelayProxy {
    async fn start(target: String) -> DelayProxy {
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
                tokio::spawn(pump(cr, sw, delay.clone()));
                tokio::spawn(pump(sr, cw, delay.clone()));
            }
        });
        DelayProxy { port, delay_ms }
    }

    fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let ms = delay.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

const LEASE_MS: i64 = 200;
const DELAY_MS: u64 = 400;

/// The single redis-server's URL, or `None` on the other backends.
fn single_redis() -> Option<String> {
    match backend() {
        Backend::Redis { urls, .. } if urls.len() == 1 => Some(urls[0].clone()),
        _ => None,
    }
}

/// A (slow, through the proxy) and B (direct) on one store and prefix,
/// both with a short claim lease; and a Redis connection for the test.
async fn slow_and_fast(
    url: &str,
) -> (
    TestApp,
    TestApp,
    DelayProxy,
    String,
    redis::aio::MultiplexedConnection,
) {
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = DelayProxy::start(target).await;
    let prefix = unique_prefix();
    let proxied = format!("redis://127.0.0.1:{}/0", proxy.port);
    let p = prefix.clone();
    let slow = spawn_with(move |s| {
        use_backend(s, &p);
        s.store.url = vec![proxied];
        s.store.pool_size = 1;
        s.store.command_timeout_ms = 10_000;
        s.engine.claim_lease_ms = LEASE_MS;
    })
    .await;
    let p = prefix.clone();
    let fast = spawn_with(move |s| {
        use_backend(s, &p);
        s.engine.claim_lease_ms = LEASE_MS;
    })
    .await;
    let conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    (slow, fast, proxy, prefix, conn)
}

/// Waits until `key` exists (the slow instance's claim has landed).
async fn until_exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) {
    let started = Instant::now();
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap();
        if exists {
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
async fn a_slow_binding_taken_over_after_its_lease_never_lands() {
    let Some(url) = single_redis() else {
        eprintln!("fencing: runs on a single redis-server only (LOYALTY_TEST_BACKEND=redis)");
        return;
    };
    let (slow, fast, proxy, prefix, mut conn) = slow_and_fast(&url).await;
    for round in 0..3 {
        let contact = fast.new_contact(true).await;
        let (x, _) = fast.card_in(State::IssuedUnbound).await;
        let (y, _) = fast.card_in(State::IssuedUnbound).await;

        proxy.set_delay(DELAY_MS);
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
        proxy.set_delay(0);

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
async fn a_slow_contact_write_taken_over_after_its_lease_never_lands() {
    let Some(url) = single_redis() else {
        eprintln!("fencing: runs on a single redis-server only (LOYALTY_TEST_BACKEND=redis)");
        return;
    };
    let (slow, fast, proxy, prefix, mut conn) = slow_and_fast(&url).await;
    for round in 0..3 {
        let mobile = unique_mobile();
        let (first, second) = (unique_code(), unique_code());

        proxy.set_delay(DELAY_MS);
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
        proxy.set_delay(0);

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
