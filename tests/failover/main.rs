//! Failover tests (issue 23, item 5): real redis-server processes with
//! replicas on loopback, two real server instances, tills retrying as tills
//! do, masters killed with -9 under that traffic. Every test here needs
//! redis-server and is `#[ignore = "needs …"]`: scripts/test.sh runs them
//! with --include-ignored (docs/testing.md). Each test owns its Redis
//! processes, ports and temp dirs. What they measure is printed; the
//! numbers of docs/redis.md ("Failover") come from
//! examples/failover_recovery.rs, which drives the same scenario longer.

#[path = "../common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

#[path = "../common/cluster_failover.rs"]
#[allow(dead_code)]
mod cluster_failover;

#[path = "../common/netns.rs"]
mod netns;

mod deployment;
mod lagging;
mod scenario;
mod servers;
mod till;
mod under_traffic;
mod workload;
