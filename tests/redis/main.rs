//! Process-level tests of the Redis backend: durability across `kill -9`
//! (of redis-server and of the `loyalty` binary), behaviour while Redis is
//! down, deterministic interleavings against the memory store and real
//! Redis. A separate test binary from `tests/api`, because each test here
//! owns and kills its own redis-server (the API suite shares one per
//! process, which these tests must not disturb), whatever
//! LOYALTY_TEST_BACKEND says. A test that starts redis-server or
//! PostgreSQL is `#[ignore = "needs …"]`: plain `cargo test` runs only the
//! memory-store ones, `--include-ignored` all (scripts/test.sh,
//! docs/testing.md).

#[path = "../common/postgres_server.rs"]
mod postgres_server;
#[path = "../common/redis_server.rs"]
// Its cluster-with-replicas part serves tests/failover, not this suite.
#[allow(dead_code)]
mod redis_server;

mod archive;
mod archive_crash;
mod cache_faults;
mod durability;
mod ended_hold_claims;
mod engine_settings;
mod events;
mod faults;
mod interleavings;
mod owned_review;
mod port_races;
mod purchase_record_life;
mod record_sets;
mod replacement_chain_limit;
mod replacement_repair;
mod replica_ack_replays;
mod round_trips;
mod script_refusals;
mod sentinel;
mod sentinel_tls;
mod slow_master;
mod stale_base;
mod store_semantics;
mod support;
mod tls_acl;
