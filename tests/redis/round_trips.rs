//! What a write costs in store round trips (issue 20, item 2), counted on
//! the test's own Redis by `MONITOR`: every command a client sent (a script
//! call is one; the commands a script runs show as `[.. lua]` and are not
//! counted), between two markers around one command of the engine. A
//! confirm on a card this instance has seen is one script on one node, and
//! at most two sequential calls on a cluster (the PurchaseId's index lives
//! in another slot).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loyalty::domain::{
    Amount, BonusType, Card, CardNumber, CardType, Category, ContactCode, ContactPatch,
    MobileNumber,
};
use loyalty::engine::{Command, ConfirmRequest, ManualBonusRequest, Ops};
use loyalty::store::redis::{RedisSettings, RedisStore};
use loyalty::store::Store;

use crate::engine_settings::{admin, ops_settings};
use crate::redis_server::{free_port, RedisCluster, RedisServer};

/// Commands that are no request's data: the client's own housekeeping
/// and this test's markers; and `EVAL`, which the store sends only when
/// its `EVALSHA` was answered `NOSCRIPT` (a script's first call on a node,
/// once in the node's life: counted once, as the `EVALSHA`).
const NOT_DATA: &[&str] = &[
    "PING", "CLIENT", "HELLO", "CLUSTER", "SELECT", "COMMAND", "READONLY", "ECHO", "INFO", "EVAL",
];

/// The commands one redis-server receives, as `MONITOR` shows them.
struct Monitor {
    node: u16,
    lines: Arc<Mutex<Vec<String>>>,
    marks: usize,
}

impl Monitor {
    fn start(node: &RedisServer) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", node.port)).expect("connects");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR sent");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // Ends when the server goes (the test's end).
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut monitor = Monitor {
            node: node.port,
            lines,
            marks: 0,
        };
        monitor.mark();
        monitor
    }

    /// Sends a marker and waits until the monitor has seen it: every
    /// command sent before is in `lines` then. Returns its index.
    fn mark(&mut self) -> usize {
        self.marks += 1;
        let marker = format!("round-trips-mark-{}", self.marks);
        let mut s = TcpStream::connect(("127.0.0.1", self.node)).expect("connects");
        s.write_all(format!("ECHO {marker}\r\n").as_bytes())
            .expect("ECHO sent");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .position(|l| l.contains(&marker))
            {
                return i;
            }
            assert!(Instant::now() < deadline, "MONITOR never showed {marker}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The data commands clients sent between two marks.
    fn sent(&self, from: usize, to: usize) -> Vec<String> {
        self.lines.lock().unwrap()[from + 1..to]
            .iter()
            .filter(|l| !l.contains(" lua] "))
            .filter(|l| {
                let name = l.split('"').nth(1).unwrap_or_default().to_ascii_uppercase();
                !NOT_DATA.contains(&name.as_str())
            })
            .cloned()
            .collect()
    }
}

async fn store(urls: Vec<String>) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(RedisSettings {
            urls,
            key_prefix: "R".into(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            // The write base is trusted only while the record cache's
            // invalidation channel vouches that Redis lost nothing
            // (`Store::continuity`): without it every write reads first.
            cache_capacity: 10_000,
            cache_segments: 1,
            sentinel: None,
            min_replicas_acked: 0,
            replica_ack_timeout: std::time::Duration::ZERO,
            wait_pool_size: 1,
            access: Default::default(),
        })
        .await
        .expect("connects"),
    )
}

fn money(h: i64) -> Amount {
    Amount::from_hundredths(h).expect("an amount")
}

/// An Active card with 100.00 of bonuses, set up through `ops` (which
/// thereby has seen it).
async fn active_card(store: &dyn Store, ops: &Ops, n: &str) -> CardNumber {
    let number = CardNumber::from_trusted(n.to_owned());
    let card = Card::new(number.clone(), Category::Plastic, CardType::Bonus);
    store.insert_cards(&[card]).await.expect("inserted");
    let mobile = MobileNumber::parse(&format!("7917{}", &n[n.len() - 7..])).expect("a mobile");
    let steps = [
        Command::Issue {
            actor: admin(),
            number: number.clone(),
        },
        Command::UpsertContact {
            code: ContactCode::from_trusted(format!("RT{n}")),
            patch: ContactPatch {
                name: Some("n".into()),
                mobile: Some(mobile.clone()),
                ..Default::default()
            },
        },
        Command::BindTo {
            actor: admin(),
            number: number.clone(),
            mobile,
        },
        Command::Active {
            actor: admin(),
            number: number.clone(),
        },
        Command::ManualBonus(ManualBonusRequest {
            actor: admin(),
            number: number.clone(),
            operation_id: "seed".into(),
            amount: money(10_000),
            bonus_type: BonusType::ALL[0],
            active_from: None,
            expire_date: None,
            comment: None,
        }),
    ];
    for step in steps {
        ops.execute(step).await.expect("set up");
    }
    number
}

fn bonus(number: &CardNumber, id: &str) -> Command {
    Command::ManualBonus(ManualBonusRequest {
        actor: admin(),
        number: number.clone(),
        operation_id: id.to_owned(),
        amount: money(1_000),
        bonus_type: BonusType::ALL[0],
        active_from: None,
        expire_date: None,
        comment: None,
    })
}

fn confirm(number: &CardNumber, id: &str) -> Command {
    Command::Confirm(ConfirmRequest {
        actor: admin(),
        number: number.clone(),
        purchase_id: id.to_owned(),
        amount: money(10_000),
        bonus_to_pay: money(500),
        date: None,
    })
}

/// The data commands each command costs on a warm card: three confirms
/// in a row, then a refund and a cancel of two of them, a manual bonus, a
/// block and an unblock.
async fn costs(nodes: &[&RedisServer], urls: Vec<String>) -> Vec<(&'static str, usize)> {
    let mut monitors: Vec<Monitor> = nodes.iter().map(|n| Monitor::start(n)).collect();
    let store = store(urls).await;
    // From the set-up on: its writes leave the base the commands use.
    wait_continuity(&*store).await;
    let ops = Ops::new(store.clone(), ops_settings(30_000, 3600));
    let number = active_card(&*store, &ops, "4100000000017").await;
    let commands = [
        ("confirm", confirm(&number, "RT-0")),
        ("confirm", confirm(&number, "RT-1")),
        ("confirm", confirm(&number, "RT-2")),
        (
            "refund",
            Command::Refund {
                actor: admin(),
                number: number.clone(),
                purchase_id: "RT-1".into(),
                refund_id: "R-1".into(),
                amount: money(1_000),
            },
        ),
        (
            "cancel",
            Command::Cancel {
                actor: admin(),
                number: number.clone(),
                purchase_id: "RT-2".into(),
            },
        ),
        ("manual bonus", bonus(&number, "MB-1")),
        (
            "block",
            Command::Block {
                actor: admin(),
                number: number.clone(),
                mobile: None,
                reason_code: "0".into(),
                reason_name: None,
            },
        ),
        (
            "unblock",
            Command::Unblock {
                actor: admin(),
                number: number.clone(),
                mobile: None,
                reason_code: "0".into(),
                reason_name: None,
            },
        ),
    ];
    let mut costs = Vec::new();
    for (what, command) in commands {
        wait_continuity(&*store).await;
        let before: Vec<usize> = monitors.iter_mut().map(Monitor::mark).collect();
        let reply = ops.execute(command).await;
        let mut sent = Vec::new();
        for (m, from) in monitors.iter_mut().zip(before) {
            let to = m.mark();
            sent.extend(m.sent(from, to));
        }
        assert!(reply.is_ok(), "{what}: {reply:?}");
        println!("{what}: {sent:#?}");
        costs.push((what, sent.len()));
    }
    println!("store round trips per command: {costs:?}");
    costs
}

/// Until the store vouches for its continuity (the record cache's channel
/// is up, a heartbeat recent): a write base is used only then. Bounded
/// (a guard against a hang, not a timing assertion).
async fn wait_continuity(store: &dyn Store) {
    for _ in 0..400 {
        if store.coherence().and_then(|c| c.continuity()).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the record cache's channel never came up");
}

fn cost_of(costs: &[(&str, usize)], what: &str) -> Vec<usize> {
    costs
        .iter()
        .filter(|(w, _)| *w == what)
        .map(|(_, n)| *n)
        .collect()
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_write_on_a_warm_card_is_one_round_trip_on_one_node() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    let costs = costs(&[&server], vec![server.url()]).await;
    assert_eq!(
        cost_of(&costs, "confirm"),
        [1, 1, 1],
        "Redis commands per confirm, one node"
    );
    // Unblock reads the contact's data sufficiency first (docs/api.md §5).
    for (what, most) in [
        ("refund", 1),
        ("cancel", 1),
        ("manual bonus", 1),
        ("block", 1),
        ("unblock", 2),
    ] {
        assert_eq!(cost_of(&costs, what), [most], "Redis commands per {what}");
    }
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_confirm_on_a_warm_card_is_at_most_two_round_trips_on_a_cluster() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = RedisCluster::start(dir.path(), false);
    let nodes: Vec<&RedisServer> = cluster.nodes.iter().collect();
    let costs = costs(&nodes, cluster.urls()).await;
    let confirms = cost_of(&costs, "confirm");
    assert!(
        confirms.iter().all(|c| *c <= 2),
        "Redis commands per confirm on a cluster: {confirms:?}"
    );
}

/// The data commands `command` sends through `ops`, on every monitored
/// node, and its reply.
async fn sent_by(
    monitors: &mut [Monitor],
    ops: &Ops,
    command: Command,
) -> (Vec<String>, loyalty::engine::Reply) {
    let before: Vec<usize> = monitors.iter_mut().map(Monitor::mark).collect();
    let reply = ops.execute(command).await.expect("answered");
    let mut sent = Vec::new();
    for (m, from) in monitors.iter_mut().zip(before) {
        let to = m.mark();
        sent.extend(m.sent(from, to));
    }
    (sent, reply)
}

/// The Active bonuses of a balance, in hundredths.
fn active_bonuses(reply: &loyalty::engine::Reply) -> i64 {
    match reply {
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

fn balance(number: &CardNumber) -> Command {
    Command::Balance {
        number: number.clone(),
    }
}

/// The shard owns the card's decoded state and the store keeps no copy
/// (issue 20, item 1): a warm balance costs no Redis command; an owner
/// that has not read the card (a new instance over the same store) asks
/// Redis; another instance's write is seen by the next balance once its
/// invalidation arrived (polled: a guard against a hang, not a timing
/// assertion), which reads the card again, once.
#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_warm_balance_is_answered_by_its_owner_and_sees_another_instances_write() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    let mut monitors = vec![Monitor::start(&server)];
    let store_a = store(vec![server.url()]).await;
    wait_continuity(&*store_a).await;
    let a = Ops::new(store_a.clone(), ops_settings(30_000, 3600));
    let number = active_card(&*store_a, &a, "4100000000033").await;
    let (first, reply) = sent_by(&mut monitors, &a, balance(&number)).await;
    assert!(
        !first.is_empty(),
        "our own writes leave no answer: read once"
    );
    let seeded = active_bonuses(&reply);
    let (warm, reply) = sent_by(&mut monitors, &a, balance(&number)).await;
    assert_eq!(
        warm,
        Vec::<String>::new(),
        "a warm balance asks Redis nothing"
    );
    assert_eq!(active_bonuses(&reply), seeded);

    // Another instance: its own store (connections, feed) and owners.
    let store_b = store(vec![server.url()]).await;
    wait_continuity(&*store_b).await;
    let b = Ops::new(store_b.clone(), ops_settings(30_000, 3600));
    let (cold, reply) = sent_by(&mut monitors, &b, balance(&number)).await;
    assert!(
        cold.iter().any(|c| c.contains("4100000000033")),
        "the store keeps no decoded card: a new owner reads it from Redis: {cold:?}"
    );
    assert_eq!(active_bonuses(&reply), seeded);
    b.execute(bonus(&number, "MB-B"))
        .await
        .expect("a bonus on B");

    let mut seen = None;
    for _ in 0..400 {
        let (sent, reply) = sent_by(&mut monitors, &a, balance(&number)).await;
        if active_bonuses(&reply) != seeded {
            seen = Some((sent, active_bonuses(&reply)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (sent, now) = seen.expect("A never saw B's bonus");
    assert_eq!(now, seeded + 1_000, "B's bonus, once");
    assert!(!sent.is_empty(), "seen by reading the card again");
    let (warm, _) = sent_by(&mut monitors, &a, balance(&number)).await;
    assert_eq!(warm, Vec::<String>::new(), "and owned again from then on");
}

/// A shard owns a bounded number of cards: one it evicted is read again
/// (one Redis read, the right answer) and owned again.
#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn an_evicted_card_is_read_again_and_owned_again() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = RedisServer::start(dir.path(), free_port(false), &[], None);
    let mut monitors = vec![Monitor::start(&server)];
    let store = store(vec![server.url()]).await;
    wait_continuity(&*store).await;
    // Two cards in all, on one shard.
    let ops = Ops::new(store.clone(), ops_settings(30_000, 3600)).with_owned(2, 1);
    let cards = [
        active_card(&*store, &ops, "4100000000041").await,
        active_card(&*store, &ops, "4100000000042").await,
        active_card(&*store, &ops, "4100000000043").await,
    ];
    let (_, reply) = sent_by(&mut monitors, &ops, balance(&cards[0])).await;
    let first = active_bonuses(&reply);
    let (warm, _) = sent_by(&mut monitors, &ops, balance(&cards[0])).await;
    assert_eq!(warm, Vec::<String>::new(), "owned");
    for other in &cards[1..] {
        sent_by(&mut monitors, &ops, balance(other)).await;
    }
    let (again, reply) = sent_by(&mut monitors, &ops, balance(&cards[0])).await;
    assert!(
        again.iter().any(|c| c.contains("4100000000041")),
        "evicted: read from Redis again: {again:?}"
    );
    assert_eq!(active_bonuses(&reply), first);
    let (warm, _) = sent_by(&mut monitors, &ops, balance(&cards[0])).await;
    assert_eq!(warm, Vec::<String>::new(), "owned again");
}
