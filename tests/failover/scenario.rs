//! The failover scenario under traffic, shared by the tests (which assert
//! on its findings) and examples/failover_recovery.rs (which reports its
//! numbers): two instances, tills, and `failovers` times a master killed -9
//! — optionally after its replication stream was cut for a second, so that
//! the replica promoted lacks what the master acknowledged meanwhile.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster_failover::Failover;
use crate::deployment::Deployment;
use crate::servers::{settings, spawn_pair};
use crate::till::Till;
use crate::workload::{cards, drive, set_up, verify, Findings, Traffic};

pub struct Params {
    pub failovers: usize,
    pub tills: usize,
    pub cards: u64,
    /// Traffic on a healthy deployment before each failover, and at the end.
    pub healthy: Duration,
    /// Cut the master's replication stream a second before the kill (needs
    /// a network namespace: tests/common/netns.rs).
    pub cut: bool,
    /// `store.min_replicas_acked`.
    pub min_replicas_acked: u32,
    /// Keeps the card numbers and keys of runs in one process apart.
    pub run: u64,
}

pub struct Report {
    pub traffic: Traffic,
    pub findings: Findings,
    /// Each failover, with the cards of the master it killed.
    pub failovers: Vec<(Failover, HashSet<String>)>,
    /// From each kill until the killed master was back as a replica, in
    /// sync: with `min_replicas_acked = 1` and one replica per master, no
    /// write on the promoted master can be acknowledged before.
    pub rejoined: Vec<Duration>,
    pub elapsed: Duration,
}

impl Report {
    /// From each kill to the first write acknowledged on a card of the
    /// killed master (`None`: no write on them came after it).
    pub fn recoveries(&self) -> Vec<Option<Duration>> {
        self.failovers
            .iter()
            .map(|(f, on)| self.traffic.first_write_after(f.at, on))
            .collect()
    }
}

pub async fn under_traffic(dep: &mut Deployment, p: &Params) -> Report {
    let mut s = settings(Vec::new(), &format!("fo{}-{}", std::process::id(), p.run));
    dep.configure(&mut s);
    s.store.min_replicas_acked = p.min_replicas_acked;
    let pair = spawn_pair(s).await;
    let till = Till::new(pair.bases.clone());
    let cards = cards(p.run, p.cards);
    set_up(&till, &cards).await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (till, cards, stop, tills, run) =
            (till.clone(), cards.clone(), stop.clone(), p.tills, p.run);
        async move { drive(&till, &cards, tills, run, stop).await }
    });
    let started = Instant::now();
    let mut failovers = Vec::new();
    let mut rejoined = Vec::new();
    for round in 0..p.failovers {
        tokio::time::sleep(p.healthy).await;
        let masters = tokio::task::block_in_place(|| dep.masters());
        let master = masters[round % masters.len()];
        let on = tokio::task::block_in_place(|| dep.cards_on(master, &cards));
        let link = if p.cut {
            let link = tokio::task::block_in_place(|| {
                let link = dep.replica_link(master);
                dep.wait_caught_up(master);
                crate::netns::cut(link.0, link.1);
                link
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some(link)
        } else {
            None
        };
        let f = tokio::task::block_in_place(|| {
            let f = dep.fail(master);
            // The old master comes back on its port: no rule of the cut
            // may touch its new connections.
            if let Some((from, to)) = link {
                crate::netns::uncut(from, to);
            }
            f
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| dep.rejoin(&f));
        rejoined.push(f.at.elapsed());
        failovers.push((f, on));
    }
    tokio::time::sleep(p.healthy).await;
    stop.store(true, Ordering::SeqCst);
    let traffic = traffic.await.expect("the tills end");
    let elapsed = started.elapsed();
    let findings = verify(&till, &cards, &traffic).await;
    pair.stop();
    Report {
        traffic,
        findings,
        failovers,
        rejoined,
        elapsed,
    }
}
