//! The harness under parallel tests (tests/common/redis_server.rs): a port
//! `free_port` found free may be taken before redis-server binds it — an
//! outgoing connection of any process takes ports from the same ephemeral
//! range, and Sentinel tests make many. redis-server then exits, and a
//! readiness check by PING alone was answered by whatever held the port:
//! the test went on against another test's Redis (and `kill9` killed that
//! one). Suspected cause of sentinel_tls failing once beside the other
//! Sentinel tests; this makes the race happen on purpose.

use crate::redis_server::{free_port, RedisServer};

#[test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
fn a_server_that_lost_its_port_starts_on_another_and_never_answers_for_the_holder() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let holder = RedisServer::start(&dir.path().join("holder"), free_port(false), &[], None);
    assert_eq!(
        holder.command("SET whose holder").as_deref(),
        Some("+OK\r\n")
    );
    // As if free_port had answered the holder's port to another test.
    let mut late = RedisServer::start(&dir.path().join("late"), holder.port, &[], None);
    assert_ne!(
        late.port, holder.port,
        "started on a port another server holds"
    );
    assert_eq!(
        late.command("GET whose").as_deref(),
        Some("$-1\r\n"),
        "the late server's handle reaches another server"
    );
    late.kill9();
    assert_eq!(
        holder.command("GET whose").as_deref(),
        Some("$6\r\nholder\r\n"),
        "killing the late server killed the holder"
    );
}
