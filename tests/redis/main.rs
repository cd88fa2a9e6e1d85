//! Process-level tests of the Redis backend: durability across `kill -9`
//! (of redis-server and of the `loyalty` binary) and behaviour while Redis
//! is down. A separate test binary from `tests/api`, because each test here
//! owns and kills its own redis-server (the API suite shares one per
//! process, which these tests must not disturb), and because they always
//! need Redis whatever LOYALTY_TEST_BACKEND says.

#[path = "../common/postgres_server.rs"]
mod postgres_server;
#[path = "../common/redis_server.rs"]
mod redis_server;

mod archive;
mod archive_crash;
mod cache_faults;
mod durability;
mod engine_settings;
mod events;
mod faults;
mod interleavings;
mod record_sets;
mod replacement_repair;
mod review2;
mod store_semantics;
mod support;
