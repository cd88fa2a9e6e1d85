//! Failing over a [`RedisCluster`] started with replicas: kill -9 a master,
//! wait until its replica is promoted and the cluster serves every slot
//! again, restart the old master (same port, same directory, its
//! `nodes.conf`) and wait until it has rejoined as the new master's
//! replica. Every wait is bounded and panics with what it saw, so a stuck
//! failover fails the test instead of hanging it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::redis_server::{RedisCluster, RedisServer};

/// The node timeout the failover tests give the cluster: a dead master is
/// marked failed and replaced within about twice this.
pub const NODE_TIMEOUT_MS: &str = "1000";

/// How long a promotion or a rejoin may take before the test gives up (a
/// guard against hangs on a loaded machine, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

/// One `field:value` line of an INFO answer.
pub fn info_field(node: &RedisServer, section: &str, field: &str) -> Option<String> {
    let info = node.command(&format!("INFO {section}"))?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
}

/// The local port of `master`'s replica on their replication link (the
/// master's `CLIENT LIST TYPE replica`; one replica).
pub fn replica_link_port(master: &RedisServer) -> u16 {
    let list = master
        .command("CLIENT LIST TYPE replica")
        .unwrap_or_default();
    list.split_whitespace()
        .find_map(|f| f.strip_prefix("addr=127.0.0.1:")?.parse().ok())
        .unwrap_or_else(|| panic!("port {} lists no replica: {list}", master.port))
}

/// kill -9 of a redis-server, by its own pid: returns right after the
/// signal (`RedisServer::kill9` also waits for its watchdog to notice,
/// which is bookkeeping, not the kill).
pub fn kill9_now(node: &RedisServer) -> Instant {
    let pid = info_field(node, "server", "process_id")
        .unwrap_or_else(|| panic!("port {} does not answer INFO", node.port));
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(killed, "kill -9 {pid} (port {}) failed", node.port);
    Instant::now()
}

/// What a failover took, as the harness saw it.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// The node killed, and the replica promoted in its place.
    pub killed: usize,
    pub promoted: usize,
    /// When the master was killed.
    pub at: Instant,
    /// From the kill until the replica said `role:master` and every live
    /// node `cluster_state:ok`.
    pub promoted_after: Duration,
}

impl RedisCluster {
    /// Indexes of the live nodes that are masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                info_field(&self.nodes[i], "replication", "role").as_deref() == Some("master")
            })
            .collect()
    }

    /// The live replica of node `master` (by the port its replication
    /// follows).
    pub fn replica_of(&self, master: usize) -> Option<usize> {
        let port = self.nodes[master].port.to_string();
        (0..self.nodes.len()).find(|&i| {
            i != master
                && info_field(&self.nodes[i], "replication", "role").as_deref() == Some("slave")
                && info_field(&self.nodes[i], "replication", "master_port").as_deref()
                    == Some(port.as_str())
        })
    }

    /// The slot ranges node `i` serves (`[(first, last)]`), from its own
    /// `CLUSTER NODES` line.
    pub fn slots_of(&self, i: usize) -> Vec<(u16, u16)> {
        let nodes = self.nodes[i].command("CLUSTER NODES").unwrap_or_default();
        let Some(line) = nodes.lines().find(|l| l.contains("myself")) else {
            return Vec::new();
        };
        line.split_whitespace()
            .skip(8)
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|s| (s, s)),
            })
            .collect()
    }

    /// Waits until node `master`'s replica has received everything the
    /// master holds (equal replication offsets).
    pub fn wait_caught_up(&self, master: usize) {
        let replica = self
            .replica_of(master)
            .unwrap_or_else(|| panic!("node {master} has no replica"));
        let started = Instant::now();
        loop {
            let ours = info_field(&self.nodes[master], "replication", "master_repl_offset");
            let theirs = info_field(&self.nodes[replica], "replication", "slave_repl_offset");
            if ours.is_some() && ours == theirs {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "node {replica} never caught up with node {master}: {theirs:?} of {ours:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Those of `cards` whose slot node `master` serves (a card's keys
    /// share its number as their hash tag).
    pub fn cards_on(&self, master: usize, cards: &[String]) -> HashSet<String> {
        let ranges = self.slots_of(master);
        cards
            .iter()
            .filter(|c| {
                let slot = self.keyslot(c);
                ranges.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .cloned()
            .collect()
    }

    /// The hash slot of a key (asked of any live node).
    pub fn keyslot(&self, key: &str) -> u16 {
        self.nodes
            .iter()
            .find_map(|n| {
                let r = n.command(&format!("CLUSTER KEYSLOT {key}"))?;
                r.trim().strip_prefix(':')?.parse().ok()
            })
            .expect("a live node answers CLUSTER KEYSLOT")
    }

    /// Every live node says `cluster_state:ok`, and every master has a
    /// replica whose link is up (so the next failover has a replica to
    /// promote, holding what its master held).
    pub fn wait_healthy(&self, dead: &[usize]) {
        let started = Instant::now();
        loop {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|i| !dead.contains(i))
                .collect();
            let ok = live.iter().all(|&i| {
                self.nodes[i]
                    .command("CLUSTER INFO")
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            });
            let masters = self.masters();
            let replicated = dead.is_empty()
                && masters.len() == 3
                && masters.iter().all(|&m| {
                    self.replica_of(m).is_some_and(|r| {
                        info_field(&self.nodes[r], "replication", "master_link_status").as_deref()
                            == Some("up")
                    })
                });
            if ok && (replicated || !dead.is_empty()) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the cluster did not become healthy (dead: {dead:?}, masters: {masters:?}):\n{}",
                self.nodes[live[0]]
                    .command("CLUSTER NODES")
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9 of master `master`; returns once its replica is promoted and
    /// the surviving nodes serve every slot again. `takeover`: don't wait
    /// for the automatic election, tell the replica `CLUSTER FAILOVER
    /// TAKEOVER` once the master is dead (for a replica that would not be
    /// elected on its own, e.g. one whose replication was cut).
    pub fn fail_master(&mut self, master: usize, takeover: bool) -> Failover {
        let replica = self
            .replica_of(master)
            .unwrap_or_else(|| panic!("node {master} has no replica to promote"));
        let at = kill9_now(&self.nodes[master]);
        self.nodes[master].kill9();
        if takeover {
            let r = self.nodes[replica].command("CLUSTER FAILOVER TAKEOVER");
            assert!(
                r.as_deref().is_some_and(|r| r.starts_with("+OK")),
                "CLUSTER FAILOVER TAKEOVER: {r:?}"
            );
        }
        loop {
            if info_field(&self.nodes[replica], "replication", "role").as_deref() == Some("master")
            {
                break;
            }
            assert!(
                at.elapsed() < PATIENCE,
                "node {replica} was not promoted after node {master} died"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.wait_healthy(&[master]);
        Failover {
            killed: master,
            promoted: replica,
            at,
            promoted_after: at.elapsed(),
        }
    }

    /// Restarts the killed master of `failover` on its port and directory:
    /// its `nodes.conf` brings it back into the cluster, which makes it a
    /// replica of the node that took its slots. Returns once it is in sync.
    pub fn rejoin(&mut self, failover: &Failover) {
        self.nodes[failover.killed].restart();
        let started = Instant::now();
        let new_master = self.nodes[failover.promoted].port.to_string();
        loop {
            let node = &self.nodes[failover.killed];
            if info_field(node, "replication", "role").as_deref() == Some("slave")
                && info_field(node, "replication", "master_port").as_deref()
                    == Some(new_master.as_str())
                && info_field(node, "replication", "master_link_status").as_deref() == Some("up")
            {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "node {} did not rejoin as a replica of node {}",
                failover.killed,
                failover.promoted
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_healthy(&[]);
    }
}
