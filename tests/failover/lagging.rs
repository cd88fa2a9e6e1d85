//! Issue 23, item 5, the replica that falls behind: its master's
//! replication stream is cut (iptables in a network namespace of the test's
//! own, tests/common/netns.rs), writes are acknowledged meanwhile, then the
//! master dies and that replica is promoted. With `min_replicas_acked = 0`
//! (asynchronous replication, Redis' default) every write acknowledged
//! during the cut is lost, and exactly those: what was replicated before
//! survives, nothing is doubled, balances stay their ledgers' sums, and both
//! instances read the promoted replica's state (no cache serves the lost
//! one).

use std::collections::HashSet;

use crate::cluster_failover::NODE_TIMEOUT_MS;
use crate::netns;
use crate::redis_server::RedisCluster;
use crate::servers::{settings, spawn_pair};
use crate::till::{Op, Outcome, Till, POS};
use crate::workload::{cards, set_up, verify, Traffic};

/// Writes before the cut, and during it.
const WRITES: usize = 12;

/// Confirms and manual bonuses, alternately, over `cards`, through both
/// instances; `tag` keeps their keys apart.
async fn write(till: &Till, cards: &[String], tag: &str) -> Vec<(Op, Outcome)> {
    let mut done = Vec::new();
    for i in 0..WRITES {
        let card = &cards[i % cards.len()];
        let key = format!("{tag}{}-{i}", std::process::id());
        let op = if i % 2 == 0 {
            Op::confirm(card, &key, 100, 1)
        } else {
            Op::bonus(card, &key, 5)
        };
        let o = till.send(&op, i).await;
        assert!(o.ok(), "{} {key}: {:?} {}", op.path, o.status, o.body);
        done.push((op, o));
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server, root, unshare and iptables (scripts/test.sh runs it: --include-ignored)"]
async fn a_cut_off_replica_promoted_loses_exactly_what_was_acknowledged_during_the_cut() {
    if !netns::enter(
        "lagging::a_cut_off_replica_promoted_loses_exactly_what_was_acknowledged_during_the_cut",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    // Validity factor 0: a replica may be elected however long it has not
    // heard from its master (the cut is silent: the link looks up).
    let mut cluster = tokio::task::block_in_place(|| {
        let c = RedisCluster::start_with_replicas(
            dir.path(),
            false,
            &[
                "--cluster-node-timeout",
                NODE_TIMEOUT_MS,
                "--cluster-replica-validity-factor",
                "0",
            ],
        );
        c.wait_healthy(&[]);
        c
    });
    let pair = spawn_pair(settings(
        cluster.urls(),
        &format!("lag{}", std::process::id()),
    ))
    .await;
    let till = Till::new(pair.bases.clone());
    let cards = cards(1, 24);
    set_up(&till, &cards).await;

    // The master with the most of the cards.
    let (master, on) = tokio::task::block_in_place(|| {
        cluster
            .masters()
            .into_iter()
            .map(|m| (m, cluster.cards_on(m, &cards)))
            .max_by_key(|(_, on)| on.len())
            .expect("masters")
    });
    let on: Vec<String> = on.into_iter().collect();
    let before = write(&till, &on, "pre").await;
    let link = tokio::task::block_in_place(|| {
        let link = (
            cluster.nodes[master].port,
            cluster.replica_link_port(master),
        );
        cluster.wait_caught_up(master);
        netns::cut(link.0, link.1);
        link
    });
    let during = write(&till, &on, "cut").await;
    // Tills read balances before they sell: both instances' caches now
    // hold what the dying master acknowledged, which the failover must drop.
    for card in &on {
        for instance in 0..2 {
            till.get_ok(instance, POS, &format!("/api/card/balance/by/{card}"))
                .await;
        }
    }
    let failover = tokio::task::block_in_place(|| {
        let f = cluster.fail_master(master, false);
        // The old master comes back on its port: no rule of the cut may
        // touch its new connections.
        netns::uncut(link.0, link.1);
        cluster.rejoin(&f);
        f
    });

    let traffic = Traffic {
        acked: before.into_iter().chain(during.clone()).collect(),
        ..Traffic::default()
    };
    let findings = verify(&till, &cards, &traffic).await;
    eprintln!(
        "min_replicas_acked = 0: {} of {} acknowledged writes lost ({} written during the cut), promoted after {:?}",
        findings.lost.len(),
        traffic.acked.len(),
        during.len(),
        failover.promoted_after
    );
    let lost: HashSet<String> = findings.lost.iter().cloned().collect();
    let cut: HashSet<String> = during
        .iter()
        .map(|(op, _)| format!("{}: {} {}", op.card, op.operation, op.reference))
        .collect();
    assert_eq!(
        lost, cut,
        "lost exactly the writes acknowledged during the cut"
    );
    assert!(findings.problems.is_empty(), "{:#?}", findings.problems);
    pair.stop();
}
