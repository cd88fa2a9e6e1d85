//! Time to recover from a Redis failover (issue 23, item 6): the scenario of
//! tests/failover (tests/failover/scenario.rs), longer, measured instead of
//! asserted. A measurement run by hand, never in CI; its table is in
//! docs/redis.md ("Failover, measured").
//!
//!   failover_recovery [--deployment cluster|sentinel] [--min-replicas-acked 0|1]
//!                     [--scenario kill|cut] [--failovers 5] [--tills 6]
//!                     [--cards 24] [--healthy-secs 3]
//!
//! Starts the deployment — a 3-master Redis Cluster with one replica each
//! (node timeout 1000 ms), or a master + replica behind three sentinels
//! (down after 1000 ms) — two server instances in this process (record
//! cache on, default timeouts) and `--tills` tills confirming, refunding and
//! crediting manual bonuses, each operation retried with its idempotency key
//! on the other instance after any answer without an outcome
//! (tests/failover/till.rs). Then, `--failovers` times: `--healthy-secs` of
//! traffic, kill -9 of a master (each in turn), a replica promoted, the old
//! master restarted as a replica.
//!
//! `--scenario cut` first cuts the master's replication stream (iptables)
//! for a second of traffic, so that the replica promoted lacks what the
//! master wrote meanwhile. It must run in a network namespace of its own,
//! as root:
//!
//!   unshare -n sh -c 'ip link set lo up && target/debug/examples/failover_recovery --scenario cut'
//!
//! Reports, over all operations and failovers: acknowledged writes lost
//! (missing from their card's transactions afterwards), the time from each
//! kill -9 to the first write acknowledged on a card of the killed master
//! (p50, max; on attempts sent after the kill), and the 503 answers tills
//! saw.

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

#[path = "../tests/common/cluster_failover.rs"]
#[allow(dead_code)]
mod cluster_failover;

#[path = "../tests/common/netns.rs"]
#[allow(dead_code)]
mod netns;

#[path = "../tests/failover/deployment.rs"]
mod deployment;
#[path = "../tests/failover/scenario.rs"]
mod scenario;
#[path = "../tests/failover/servers.rs"]
mod servers;
#[path = "../tests/failover/till.rs"]
#[allow(dead_code)]
mod till;
#[path = "../tests/failover/workload.rs"]
mod workload;

use std::time::Duration;

use deployment::Deployment;
use scenario::{under_traffic, Params};

struct Args {
    sentinel: bool,
    params: Params,
}

fn args() -> Args {
    let mut a = Args {
        sentinel: false,
        params: Params {
            failovers: 5,
            tills: 6,
            cards: 24,
            healthy: Duration::from_secs(3),
            cut: false,
            min_replicas_acked: 0,
            run: 7,
        },
    };
    let p = &mut a.params;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--deployment" => {
                a.sentinel = match value.as_str() {
                    "cluster" => false,
                    "sentinel" => true,
                    other => panic!("--deployment cluster|sentinel, not {other}"),
                }
            }
            "--scenario" => {
                p.cut = match value.as_str() {
                    "kill" => false,
                    "cut" => true,
                    other => panic!("--scenario kill|cut, not {other}"),
                }
            }
            "--min-replicas-acked" => {
                p.min_replicas_acked = value.parse().expect("--min-replicas-acked N")
            }
            "--failovers" => p.failovers = value.parse().expect("--failovers N"),
            "--tills" => p.tills = value.parse().expect("--tills N"),
            "--cards" => p.cards = value.parse().expect("--cards N"),
            "--healthy-secs" => {
                p.healthy = Duration::from_secs(value.parse().expect("--healthy-secs N"))
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
    let p = &args.params;
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut dep = tokio::task::block_in_place(|| {
        if args.sentinel {
            Deployment::sentinel(dir.path())
        } else {
            Deployment::cluster(dir.path())
        }
    });
    let report = under_traffic(&mut dep, p).await;
    for (i, ((f, _), back)) in report.failovers.iter().zip(&report.rejoined).enumerate() {
        eprintln!(
            "failover {}: node {} -> node {}, promoted after {:?}, old master back as its replica after {:?}",
            i + 1,
            f.killed,
            f.promoted,
            f.promoted_after,
            back
        );
    }
    let (traffic, findings) = (&report.traffic, &report.findings);
    let mut recovered: Vec<Duration> = report.recoveries().into_iter().flatten().collect();
    recovered.sort();
    let mut promoted: Vec<Duration> = report
        .failovers
        .iter()
        .map(|(f, _)| f.promoted_after)
        .collect();
    promoted.sort();
    println!(
        "| deployment | setting | scenario | operations acknowledged | failovers | acknowledged writes lost | kill → first write p50 / max | kill → replica promoted p50 / max | 503s tills saw | other attempts without outcome |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | min_replicas_acked = {} | {} | {} in {:.0} s | {} | {} | {:.2} s / {:.2} s | {:.2} s / {:.2} s | {} | {} |",
        dep.name(),
        p.min_replicas_acked,
        if p.cut { "replica cut 1 s before the kill" } else { "kill -9 under traffic" },
        traffic.acked.len(),
        report.elapsed.as_secs_f64(),
        report.failovers.len(),
        findings.lost.len(),
        percentile(&recovered, 0.5).as_secs_f64(),
        recovered.last().copied().unwrap_or_default().as_secs_f64(),
        percentile(&promoted, 0.5).as_secs_f64(),
        promoted.last().copied().unwrap_or_default().as_secs_f64(),
        traffic.unavailable_answers(),
        traffic.attempts_without_outcome() - traffic.unavailable_answers(),
    );
    if recovered.len() < report.failovers.len() {
        println!(
            "({} failovers saw no write on their cards afterwards)",
            report.failovers.len() - recovered.len()
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
}
