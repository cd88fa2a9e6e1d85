//! Time to recover from a Redis failover (issue 23, item 6): the scenario of
//! tests/failover, longer, measured instead of asserted. A measurement run
//! by hand, never in CI; its table is in docs/redis.md ("Failover").
//!
//!   failover_recovery [--scenario kill|cut] [--failovers 5] [--tills 6]
//!                     [--cards 24] [--healthy-secs 3]
//!
//! Starts a 3-master Redis Cluster with one replica each (cluster node
//! timeout 1000 ms), two server instances in this process (record cache on,
//! default timeouts) and `--tills` tills confirming, refunding and crediting
//! manual bonuses, each operation retried with its idempotency key on the
//! other instance after any answer without an outcome
//! (tests/failover/till.rs). Then, `--failovers` times: `--healthy-secs` of
//! traffic, kill -9 of a master (each in turn), its replica promoted, the
//! old master restarted as a replica.
//!
//! `--scenario cut` first cuts the master's replication stream (iptables)
//! for a second of traffic, so that the replica promoted lacks what the
//! master acknowledged meanwhile. It must run in a network namespace of its
//! own, as root:
//!
//!   unshare -n sh -c 'ip link set lo up && target/debug/examples/failover_recovery --scenario cut'
//!
//! Reports, over all operations and failovers: acknowledged writes lost
//! (missing from their card's transactions afterwards), the time from each
//! kill -9 to the first write acknowledged on a card of the killed master
//! (p50, max; counted from the kill, on attempts sent after it), and the
//! 503 answers tills saw.

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

#[path = "../tests/common/cluster_failover.rs"]
#[allow(dead_code)]
mod cluster_failover;

#[path = "../tests/common/netns.rs"]
#[allow(dead_code)]
mod netns;

#[path = "../tests/failover/servers.rs"]
mod servers;
#[path = "../tests/failover/till.rs"]
#[allow(dead_code)]
mod till;
#[path = "../tests/failover/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_failover::NODE_TIMEOUT_MS;
use redis_server::RedisCluster;

struct Args {
    cut: bool,
    failovers: usize,
    tills: usize,
    cards: u64,
    healthy: Duration,
}

fn args() -> Args {
    let mut a = Args {
        cut: false,
        failovers: 5,
        tills: 6,
        cards: 24,
        healthy: Duration::from_secs(3),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--scenario" => {
                a.cut = match value.as_str() {
                    "kill" => false,
                    "cut" => true,
                    other => panic!("--scenario kill|cut, not {other}"),
                }
            }
            "--failovers" => a.failovers = value.parse().expect("--failovers N"),
            "--tills" => a.tills = value.parse().expect("--tills N"),
            "--cards" => a.cards = value.parse().expect("--cards N"),
            "--healthy-secs" => {
                a.healthy = Duration::from_secs(value.parse().expect("--healthy-secs N"))
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut cluster = tokio::task::block_in_place(|| {
        let c = RedisCluster::start_with_replicas(
            dir.path(),
            false,
            &[
                "--cluster-node-timeout",
                NODE_TIMEOUT_MS,
                // A cut replica must still be electable (its link looks up).
                "--cluster-replica-validity-factor",
                "0",
            ],
        );
        c.wait_healthy(&[]);
        c
    });
    let prefix = format!("recovery{}", std::process::id());
    let pair = servers::spawn_pair(servers::settings(cluster.urls(), &prefix)).await;
    let till = till::Till::new(pair.bases.clone());
    let cards = workload::cards(7, args.cards);
    workload::set_up(&till, &cards).await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (till, cards, stop, tills) = (till.clone(), cards.clone(), stop.clone(), args.tills);
        async move { workload::drive(&till, &cards, tills, 7, stop).await }
    });
    let started = Instant::now();
    let mut failovers = Vec::new();
    for round in 0..args.failovers {
        tokio::time::sleep(args.healthy).await;
        let master = tokio::task::block_in_place(|| cluster.masters())[round % 3];
        let on = tokio::task::block_in_place(|| cluster.cards_on(master, &cards));
        let link = if args.cut {
            let link = tokio::task::block_in_place(|| {
                let link = (
                    cluster.nodes[master].port,
                    cluster.replica_link_port(master),
                );
                cluster.wait_caught_up(master);
                netns::cut(link.0, link.1);
                link
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(link)
        } else {
            None
        };
        let f = tokio::task::block_in_place(|| {
            let f = cluster.fail_master(master, false);
            if let Some((from, to)) = link {
                netns::uncut(from, to);
            }
            f
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| cluster.rejoin(&f));
        eprintln!(
            "failover {}: node {} -> node {}, promoted after {:?}",
            round + 1,
            f.killed,
            f.promoted,
            f.promoted_after
        );
        failovers.push((f, on));
    }
    tokio::time::sleep(args.healthy).await;
    stop.store(true, Ordering::SeqCst);
    let traffic = traffic.await.expect("the tills end");
    let secs = started.elapsed().as_secs_f64();
    let findings = workload::verify(&till, &cards, &traffic).await;

    let mut recovered: Vec<Duration> = failovers
        .iter()
        .filter_map(|(f, on)| traffic.first_write_after(f.at, on))
        .collect();
    recovered.sort();
    let mut promoted: Vec<Duration> = failovers.iter().map(|(f, _)| f.promoted_after).collect();
    promoted.sort();
    println!(
        "| deployment | setting | scenario | operations acknowledged | failovers | acknowledged writes lost | kill → first write p50 / max | kill → replica promoted p50 / max | 503s tills saw | other attempts without outcome |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| cluster 3×(master+replica) | min_replicas_acked = 0 | {} | {} in {secs:.0} s | {} | {} | {:.2} s / {:.2} s | {:.2} s / {:.2} s | {} | {} |",
        if args.cut { "replica cut 1 s before the kill" } else { "kill -9 under traffic" },
        traffic.acked.len(),
        failovers.len(),
        findings.lost.len(),
        percentile(&recovered, 0.5).as_secs_f64(),
        recovered.last().copied().unwrap_or_default().as_secs_f64(),
        percentile(&promoted, 0.5).as_secs_f64(),
        promoted.last().copied().unwrap_or_default().as_secs_f64(),
        traffic.unavailable_answers(),
        traffic.attempts_without_outcome() - traffic.unavailable_answers(),
    );
    if recovered.len() < failovers.len() {
        println!(
            "({} failovers saw no write on their cards afterwards)",
            failovers.len() - recovered.len()
        );
    }
    // A refund of a purchase whose acknowledgement was lost is refused
    // (PurchaseNotFound): what a till would see after such a loss.
    let mut refusals = std::collections::BTreeMap::<String, usize>::new();
    for (op, o) in &traffic.refused {
        let key = o.body["Key"].as_str().unwrap_or("?");
        *refusals.entry(format!("{} {key}", op.path)).or_default() += 1;
    }
    let others: Vec<&String> = findings
        .problems
        .iter()
        .filter(|p| {
            !traffic
                .refused
                .iter()
                .any(|(op, _)| p.contains(&op.reference))
        })
        .collect();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for p in &others {
        let kind = [
            "times",
            "holds",
            "the instances",
            "unexpected transaction",
            "a replay of /api/purchase/confirm",
            "a replay of /api/purchase/refund",
            "a replay of /api/card/bonus",
        ]
        .into_iter()
        .find(|k| p.contains(k))
        .unwrap_or("other");
        *kinds.entry(kind).or_default() += 1;
    }
    println!(
        "unresolved operations: {}; refusals: {refusals:?}; other problems: {kinds:?}",
        traffic.unresolved.len(),
    );
    for p in others.iter().take(5) {
        println!("  {p}");
    }
    pair.stop();
}
