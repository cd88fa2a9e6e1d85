//! With `store.min_replicas_acked = 1`, no retry is answered from a write
//! that no replica holds yet (src/engine/replicated.rs). Found by the
//! failover tests on Sentinel: a refund (and before it a manual bonus)
//! answered 503 for want of the replica's acknowledgement was answered 200
//! on its retry — from the outcome stored on the master — while the replica
//! still lacked it; the failover that followed lost an acknowledged write.
//!
//! Every kind of write whose retry is answered from what an earlier attempt
//! left: a replayed confirm, refund, cancel or manual bonus; a status change
//! whose card is already in that status (issue, activate) or that a rule
//! now refuses because of it (block, unblock); a binding already made. The
//! replica here is connected but stopped (SIGSTOP) until the retries are
//! done: the master counts it, and it acknowledges nothing. (Not `DEBUG
//! SLEEP`: a sleep of fixed length can end before the last retry on a
//! loaded machine, which then rightly answers 200: its one timing
//! dependency, and it failed once in a parallel run, its message not
//! kept.) Each write's first attempt answers 503; its retry,
//! the replica still stopped, must too; continued, the retry answers
//! and the write is there once. The retry goes to the other of two server
//! instances, as behind a till fleet's load balancer: the instance that
//! made the first attempt would try its write again on the card as it last
//! saw it, and that (losing) write waits for the replica by itself.

use std::time::Duration;

use serde_json::{json, Value};

use crate::durability::Server;
use crate::redis_server::{free_port, RedisServer};
use crate::sentinel::{active_card, confirm, transactions_with, write_config};
use crate::support::*;

/// One write under test: its request, and how to see it applied once.
struct Write {
    name: &'static str,
    login: &'static str,
    method: Method,
    path: String,
    body: Value,
    /// The card it changes.
    card: String,
    done: Done,
}

enum Method {
    Get,
    Post,
}

/// What the write leaves, checked once the replica is awake.
enum Done {
    /// Transactions with this reference on the card.
    Once(&'static str),
    /// The card's status.
    Status(&'static str),
}

impl Write {
    async fn send(&self, http: &Http) -> Answer {
        match self.method {
            Method::Get => http.get(self.login, &self.path).await,
            Method::Post => http.post(self.login, &self.path, self.body.clone()).await,
        }
    }
}

/// A card of its own for each write, in the state the write needs; the
/// binding is made here, with the replica awake, and only its retry comes
/// later (its first attempt's claim on the contact is itself a waited
/// write: with the replica asleep the card's write is never reached).
async fn writes(http: &Http) -> Vec<Write> {
    let pid = std::process::id();
    let post = |name, login, path: &str, body: Value, card: &str, done| Write {
        name,
        login,
        method: Method::Post,
        path: path.to_owned(),
        body,
        card: card.to_owned(),
        done,
    };
    let get = |name, path: String, card: &str, done| Write {
        name,
        login: ADMIN,
        method: Method::Get,
        path,
        body: Value::Null,
        card: card.to_owned(),
        done,
    };
    let mut w = Vec::new();

    let c = active_card(http, 41).await;
    w.push(post(
        "confirm",
        POS,
        "/api/purchase/confirm",
        confirm(&c, "asleep-p"),
        &c,
        Done::Once("asleep-p"),
    ));

    let c = active_card(http, 42).await;
    http.post(POS, "/api/purchase/confirm", confirm(&c, "asleep-r"))
        .await
        .ok();
    w.push(post(
        "refund",
        POS,
        "/api/purchase/refund",
        json!({"PurchaseId": "asleep-r", "RefundId": "asleep-r1", "Amount": 40}),
        &c,
        Done::Once("asleep-r1"),
    ));

    let c = active_card(http, 43).await;
    http.post(POS, "/api/purchase/confirm", confirm(&c, "asleep-c"))
        .await
        .ok();
    w.push(post(
        "cancel",
        POS,
        "/api/purchase/cancel",
        json!({"PurchaseId": "asleep-c"}),
        &c,
        // The purchase's and the cancel's, both referring to it.
        Done::Once("asleep-c"),
    ));

    let c = active_card(http, 44).await;
    w.push(post(
        "manual bonus",
        "marketer",
        "/api/card/bonus",
        json!({"Number": c, "OperationId": "asleep-b", "Amount": 10, "TypeCode": 0}),
        &c,
        Done::Once("asleep-b"),
    ));

    let c = active_card(http, 45).await;
    w.push(post(
        "block",
        CLIENT,
        "/api/card/block",
        json!({"Number": c, "BlockReasonCode": "0"}),
        &c,
        Done::Status("Blocked"),
    ));

    let c = active_card(http, 46).await;
    http.block(&c).await.ok();
    w.push(post(
        "unblock",
        ADMIN,
        "/api/card/unblock",
        json!({"Number": c, "UnBlockReasonCode": "0"}),
        &c,
        Done::Status("Active"),
    ));

    let c = card_number(47);
    http.load_cards(std::slice::from_ref(&c)).await;
    w.push(get(
        "issue",
        format!("/api/card/issue?Number={c}"),
        &c,
        Done::Status("Issued"),
    ));

    let c = card_number(48);
    http.load_cards(std::slice::from_ref(&c)).await;
    http.issue(&c).await.ok();
    http.create_contact(&format!("A-48-{pid}"), &mobile(48))
        .await
        .ok();
    http.bindto(&c, &mobile(48)).await.ok();
    w.push(get(
        "activate",
        format!("/api/card/active?Number={c}"),
        &c,
        Done::Status("Active"),
    ));

    let c = card_number(49);
    http.load_cards(std::slice::from_ref(&c)).await;
    http.issue(&c).await.ok();
    http.create_contact(&format!("A-49-{pid}"), &mobile(49))
        .await
        .ok();
    http.bindto(&c, &mobile(49)).await.ok();
    w.push(post(
        "bind (retried)",
        ADMIN,
        "/api/card/bindto",
        json!({"Number": c, "MobileNumber": mobile(49)}),
        &c,
        Done::Status("Issued"),
    ));
    w
}

fn is_unavailable(a: &Answer) -> bool {
    (a.status, a.key()) == (503, "StoreUnavailable")
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn no_retry_is_answered_before_the_replica_holds_what_it_answers_from() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let master = RedisServer::start(&dir.path().join("master"), free_port(false), &[], None);
    let master_port = master.port.to_string();
    let replica = RedisServer::start(
        &dir.path().join("replica"),
        free_port(false),
        &["--replicaof", "127.0.0.1", &master_port],
        None,
    );
    for _ in 0..600 {
        if replica
            .command("INFO replication")
            .is_some_and(|r| r.contains("master_link_status:up"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let store = format!(
        "url = \"{}\"\nmin_replicas_acked = 1\nreplica_ack_timeout_ms = 100\n",
        master.url()
    );
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("the instance's dir");
        let port = free_port(false);
        let server = Server::start(&write_config(&home, port, &store), &home);
        let http = Http::new(port);
        http.wait_ready().await;
        instances.push((server, http));
    }
    let (http, other) = (&instances[0].1, &instances[1].1);
    let writes = writes(http).await;

    // The replica stops: connected, acknowledging nothing, until `stopped`
    // is dropped (also on a failed assertion: a stopped redis-server would
    // hang its own kill at the end of the test).
    let stopped = Stopped::replica(&replica);
    let mut answered = Vec::new();
    for w in &writes {
        if !w.name.ends_with("(retried)") {
            let first = w.send(http).await;
            assert!(
                is_unavailable(&first),
                "{}: a write no replica acknowledged answers 503: {} {}",
                w.name,
                first.status,
                first.body
            );
        }
        // Retried at once, the replica still asleep: what the retry would
        // answer from is on the master only.
        let retry = w.send(other).await;
        if !is_unavailable(&retry) {
            answered.push(format!("{}: {} {}", w.name, retry.status, retry.body));
        }
    }
    drop(stopped);
    assert!(
        answered.is_empty(),
        "retries answered while no replica held what they answer from: {answered:#?}"
    );

    // Awake and caught up: each retry answers, and each write is there once.
    for w in &writes {
        let mut last = None;
        for _ in 0..100 {
            let a = w.send(other).await;
            if !is_unavailable(&a) {
                last = Some(a);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = last.unwrap_or_else(|| panic!("{}: the retry answers once awake", w.name));
        match w.done {
            Done::Once(reference) => {
                a.ok();
                let expected = if w.name == "cancel" { 2 } else { 1 };
                assert_eq!(
                    transactions_with(http, &w.card, reference).await,
                    expected,
                    "{}",
                    w.name
                );
            }
            Done::Status(status) => {
                let b = http.balance(&w.card).await;
                assert_eq!(
                    b.body["StatusName"],
                    json!(status),
                    "{}: {}",
                    w.name,
                    b.body
                );
            }
        }
    }
}

/// A redis-server stopped with SIGSTOP, continued when dropped.
struct Stopped(String);

impl Stopped {
    fn replica(replica: &RedisServer) -> Stopped {
        let pid = replica
            .command("INFO server")
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("process_id:").map(|p| p.trim().to_owned()))
            })
            .expect("the replica's pid");
        signal("-STOP", &pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

fn signal(which: &str, pid: &str) {
    let sent = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "kill {which} {pid}");
}
