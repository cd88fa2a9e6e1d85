//! Issue 23, item 5, the replica that falls behind: its master's
//! replication stream is cut (iptables in a network namespace of the test's
//! own, tests/common/netns.rs), writes come meanwhile, then the master dies
//! and that replica is promoted.
//!
//! With `min_replicas_acked = 0` (asynchronous replication, Redis' default)
//! the writes are acknowledged, and every one acknowledged during the cut
//! is lost — exactly those: what was replicated before survives. With
//! `min_replicas_acked = 1` the writes during the cut answer 503 (their
//! WAIT is short: on a cluster, the WAIT on the master of the card's slot),
//! none is acknowledged, and the tills' retries after the failover apply
//! each once.
//! Either way nothing is doubled, balances stay their ledgers' sums, and
//! both instances read the promoted replica's state (no cache keeps the
//! lost one).
//!
//! A till retrying *during* the cut (its retry must not be answered from
//! the unreplicated outcome) is tests/redis/replica_ack_replays.rs.

use std::collections::HashSet;

use crate::deployment::Deployment;
use crate::netns;
use crate::servers::{settings, spawn_pair};
use crate::till::{Op, Outcome, Reply, Till, POS};
use crate::workload::{cards, set_up, verify, Traffic};

/// Writes before the cut, and during it.
const WRITES: usize = 12;

/// Confirms and manual bonuses, alternately, over `cards`; `tag` keeps
/// their keys apart.
fn ops(cards: &[String], tag: &str) -> Vec<Op> {
    (0..WRITES)
        .map(|i| {
            let card = &cards[i % cards.len()];
            let key = format!("{tag}{}-{i}", std::process::id());
            if i % 2 == 0 {
                Op::confirm(card, &key, 100, 1)
            } else {
                Op::bonus(card, &key, 5)
            }
        })
        .collect()
}

/// Sends each op as a till does (until it has an outcome), through both
/// instances in turn; each must be acknowledged.
async fn acknowledged(till: &Till, ops: Vec<Op>) -> Vec<(Op, Outcome)> {
    let mut done = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let o = till.send(&op, i).await;
        assert!(
            o.ok(),
            "{} {}: {:?} {}",
            op.path,
            op.reference,
            o.status,
            o.body
        );
        done.push((op, o));
    }
    done
}

/// The scenario on `dep` with `min_replicas_acked`; `run` keeps card
/// numbers apart.
async fn cut_then_fail(mut dep: Deployment, min_replicas_acked: u32, run: u64) {
    let mut s = settings(Vec::new(), &format!("lag{}-{run}", std::process::id()));
    dep.configure(&mut s);
    s.store.min_replicas_acked = min_replicas_acked;
    let pair = spawn_pair(s).await;
    let till = Till::new(pair.bases.clone());
    let cards = cards(run, 24);
    set_up(&till, &cards).await;

    // The master with the most of the cards.
    let (master, on) = tokio::task::block_in_place(|| {
        dep.masters()
            .into_iter()
            .map(|m| (m, dep.cards_on(m, &cards)))
            .max_by_key(|(_, on)| on.len())
            .expect("masters")
    });
    let on: Vec<String> = on.into_iter().collect();
    let before = acknowledged(&till, ops(&on, "pre")).await;
    let link = tokio::task::block_in_place(|| {
        let link = dep.replica_link(master);
        dep.wait_caught_up(master);
        netns::cut(link.0, link.1);
        link
    });
    // One attempt each, as the first attempt of a till.
    let during = ops(&on, "cut");
    let mut first = Vec::new();
    for (i, op) in during.iter().enumerate() {
        let sent = std::time::Instant::now();
        let (status, body) = match till.request(i, op.login, op.path, Some(&op.body)).await {
            Reply::Answer(status, body) => (status, body),
            Reply::Nothing(e) => panic!("no answer during the cut: {e}"),
        };
        first.push(Outcome {
            status: Some(status),
            body,
            instance: i % 2,
            no_outcome: 0,
            unavailable: 0,
            sent,
            done: std::time::Instant::now(),
        });
    }
    let answers: Vec<(u16, String)> = first
        .iter()
        .map(|o| {
            (
                o.status.unwrap_or(0),
                o.body["Key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    // Tills read balances before they sell: both instances' caches now
    // hold what the dying master wrote, which the failover must drop.
    for card in &on {
        for instance in 0..2 {
            till.get_ok(instance, POS, &format!("/api/card/balance/by/{card}"))
                .await;
        }
    }
    let failover = tokio::task::block_in_place(|| {
        let f = dep.fail(master);
        // The old master comes back on its port: no rule of the cut may
        // touch its new connections.
        netns::uncut(link.0, link.1);
        dep.rejoin(&f);
        f
    });
    // The tills' retries: an acknowledged write is not sent again (the
    // till has its answer); the others are, until acknowledged.
    let mut acked = before;
    let mut lost_expected = HashSet::new();
    for (i, (op, o)) in during.into_iter().zip(first).enumerate() {
        if o.ok() {
            lost_expected.insert(format!("{}: {} {}", op.card, op.operation, op.reference));
            acked.push((op, o));
        } else {
            let o = till.send(&op, i).await;
            assert!(
                o.ok(),
                "{} {}: {:?} {}",
                op.path,
                op.reference,
                o.status,
                o.body
            );
            acked.push((op, o));
        }
    }
    let traffic = Traffic {
        acked,
        ..Traffic::default()
    };
    let findings = verify(&till, &cards, &traffic).await;
    eprintln!(
        "{} min_replicas_acked = {min_replicas_acked}: answers during the cut {answers:?}; {} acknowledged during the cut, promoted after {:?}",
        dep.name(),
        lost_expected.len(),
        failover.promoted_after
    );
    if min_replicas_acked == 0 {
        assert!(
            answers.iter().all(|(s, k)| *s == 200 && k == "OK"),
            "without WAIT the master acknowledges: {answers:?}"
        );
    } else {
        assert!(
            answers
                .iter()
                .all(|(s, k)| *s == 503 && k == "StoreUnavailable"),
            "a write no replica acknowledged answers 503: {answers:?}"
        );
    }
    let lost: HashSet<String> = findings.lost.iter().cloned().collect();
    assert_eq!(
        lost, lost_expected,
        "lost: exactly the writes acknowledged during the cut"
    );
    assert!(findings.problems.is_empty(), "{:#?}", findings.problems);
    pair.stop();
}

/// The full path of a test of this module, for [`netns::enter`].
fn path(test: &str) -> String {
    format!("lagging::{test}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, root, unshare and iptables (scripts/test.sh runs it: --include-ignored)"]
async fn cluster_a_cut_off_replica_promoted_loses_what_was_acknowledged_during_the_cut() {
    if !netns::enter(&path(
        "cluster_a_cut_off_replica_promoted_loses_what_was_acknowledged_during_the_cut",
    )) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let dep = tokio::task::block_in_place(|| Deployment::cluster(dir.path()));
    cut_then_fail(dep, 0, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, root, unshare and iptables (scripts/test.sh runs it: --include-ignored)"]
async fn sentinel_a_cut_off_replica_promoted_loses_what_was_acknowledged_during_the_cut() {
    if !netns::enter(&path(
        "sentinel_a_cut_off_replica_promoted_loses_what_was_acknowledged_during_the_cut",
    )) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let dep = tokio::task::block_in_place(|| Deployment::sentinel(dir.path()));
    cut_then_fail(dep, 0, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, root, unshare and iptables (scripts/test.sh runs it: --include-ignored)"]
async fn sentinel_with_one_replica_ack_the_cut_writes_answer_503_and_nothing_acknowledged_is_lost()
{
    if !netns::enter(&path(
        "sentinel_with_one_replica_ack_the_cut_writes_answer_503_and_nothing_acknowledged_is_lost",
    )) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let dep = tokio::task::block_in_place(|| Deployment::sentinel(dir.path()));
    cut_then_fail(dep, 1, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, root, unshare and iptables (scripts/test.sh runs it: --include-ignored)"]
async fn cluster_with_one_replica_ack_the_cut_writes_answer_503_and_nothing_acknowledged_is_lost() {
    if !netns::enter(&path(
        "cluster_with_one_replica_ack_the_cut_writes_answer_503_and_nothing_acknowledged_is_lost",
    )) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let dep = tokio::task::block_in_place(|| Deployment::cluster(dir.path()));
    cut_then_fail(dep, 1, 5).await;
}
