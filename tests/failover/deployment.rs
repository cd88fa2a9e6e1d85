//! The two Redis deployments the failover scenarios run on, behind one
//! interface: a 3-master cluster with a replica per master, and a master +
//! replica behind three sentinels. "Master" below is an index into the
//! deployment's data nodes.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use loyalty::config::Settings;

use crate::cluster_failover::{kill9_now, replica_link_port, Failover, NODE_TIMEOUT_MS};
use crate::redis_server::{RedisCluster, RedisSentinelSet};

pub enum Deployment {
    Cluster(RedisCluster),
    Sentinel(RedisSentinelSet),
}

impl Deployment {
    /// Cluster nodes time out after a second; a replica stays electable
    /// however long it has not heard from its master (a cut link looks up,
    /// so it would be anyway; this keeps the scenarios independent of it).
    pub fn cluster(dir: &Path) -> Deployment {
        let c = RedisCluster::start_with_replicas(
            dir,
            false,
            &[
                "--cluster-node-timeout",
                NODE_TIMEOUT_MS,
                "--cluster-replica-validity-factor",
                "0",
            ],
        );
        c.wait_healthy(&[]);
        Deployment::Cluster(c)
    }

    /// The sentinels' master is down after 1 s without an answer
    /// (`RedisSentinelSet`).
    pub fn sentinel(dir: &Path) -> Deployment {
        Deployment::Sentinel(RedisSentinelSet::start(dir, false, &[]))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Deployment::Cluster(_) => "cluster 3×(master+replica)",
            Deployment::Sentinel(_) => "Sentinel: master+replica, 3 sentinels",
        }
    }

    /// Points the server's store at this deployment.
    pub fn configure(&self, s: &mut Settings) {
        match self {
            Deployment::Cluster(c) => s.store.url = c.urls(),
            Deployment::Sentinel(set) => {
                s.store.sentinel.master_name = set.name.clone();
                s.store.sentinel.urls = set.urls();
            }
        }
    }

    /// The masters now.
    pub fn masters(&self) -> Vec<usize> {
        match self {
            Deployment::Cluster(c) => c.masters(),
            Deployment::Sentinel(set) => vec![set.master()],
        }
    }

    /// Those of `cards` whose records `master` holds.
    pub fn cards_on(&self, master: usize, cards: &[String]) -> HashSet<String> {
        match self {
            Deployment::Cluster(c) => c.cards_on(master, cards),
            Deployment::Sentinel(_) => cards.iter().cloned().collect(),
        }
    }

    /// (master's port, its replica's end of the replication link).
    pub fn replica_link(&self, master: usize) -> (u16, u16) {
        let node = match self {
            Deployment::Cluster(c) => &c.nodes[master],
            Deployment::Sentinel(set) => &set.nodes[master],
        };
        (node.port, replica_link_port(node))
    }

    /// Until `master`'s replica has everything `master` wrote.
    pub fn wait_caught_up(&self, master: usize) {
        match self {
            Deployment::Cluster(c) => c.wait_caught_up(master),
            Deployment::Sentinel(set) => set.wait_in_sync(),
        }
    }

    /// kill -9 of `master`; returns once a replica was promoted in its
    /// place and serves.
    pub fn fail(&mut self, master: usize) -> Failover {
        match self {
            Deployment::Cluster(c) => c.fail_master(master, false),
            Deployment::Sentinel(set) => {
                let old = set.nodes[master].port;
                let at: Instant = kill9_now(&set.nodes[master]);
                set.nodes[master].kill9();
                let promoted = set.wait_promotion(old);
                Failover {
                    killed: master,
                    promoted,
                    at,
                    promoted_after: at.elapsed(),
                }
            }
        }
    }

    /// The killed master back, as a replica of the promoted one, in sync.
    pub fn rejoin(&mut self, f: &Failover) {
        match self {
            Deployment::Cluster(c) => c.rejoin(f),
            Deployment::Sentinel(set) => set.restart_as_replica(f.killed),
        }
    }
}
