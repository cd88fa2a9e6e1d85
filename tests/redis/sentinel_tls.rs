//! The README's "Running on Redis" configuration, run as written: TLS only
//! (client certificates required), ACL users with passwords read from
//! files, a master and a replica behind three sentinels that speak TLS and
//! have their own user and password. The `[store]` tables are taken from
//! README.md with only the addresses and file paths replaced, so the
//! README cannot drift from what is tested. The server serves a purchase,
//! follows a `kill -9` of the master, and no password reaches its log.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::durability::Server;
use crate::redis_server::free_port;
use crate::support::*;
use crate::tls_acl::{write_certs, TlsRedis, PASSWORD};

const SENTINEL_PASSWORD: &str = "spw-52d1e0-not-in-any-log";
const MASTER: &str = "loyalty";

/// The README's `[store]` block, from its "Running on Redis" section.
fn readme_store_block() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Running on Redis")
        .nth(1)
        .expect("README.md has a \"Running on Redis\" section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```toml block in it");
    block.to_owned()
}

/// Replaces `from` by `to` in `text`, which must contain it: a README that
/// no longer says it fails here instead of testing something else.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "README's configuration lacks {from:?}");
    text.replace(from, to)
}

/// A TLS redis-server in sentinel mode, monitoring the master at
/// `master_port`, reaching the data nodes and the other sentinels over
/// TLS with ACL users, and with a user of its own for clients.
fn sentinel(dir: &Path, i: usize, master_port: u16) -> TlsRedis {
    let extra = format!(
        "tls-replication yes\n\
         sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER} 1000\n\
         sentinel failover-timeout {MASTER} 3000\n\
         sentinel auth-user {MASTER} loyalty\n\
         sentinel auth-pass {MASTER} {PASSWORD}\n\
         sentinel sentinel-user loyalty\n\
         sentinel sentinel-pass {PASSWORD}\n\
         user sentinel-client on >{SENTINEL_PASSWORD} allchannels +@all\n"
    );
    TlsRedis::node_with_args(
        dir,
        &dir.join(format!("sentinel{i}")),
        free_port(false),
        &extra,
        "--sentinel",
    )
}

/// redis-cli over TLS as `sentinel-client` (the test's tool; the server
/// reads its passwords from files).
fn sentinel_cli(dir: &Path, port: u16, args: &[&str]) -> String {
    cli(dir, port, "sentinel-client", SENTINEL_PASSWORD, args)
}

fn cli(dir: &Path, port: u16, user: &str, password: &str, args: &[&str]) -> String {
    let d = dir.display();
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", &format!("{d}/ca.pem")])
        .args(["--cert", &format!("{d}/client.pem")])
        .args(["--key", &format!("{d}/client.key")])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--user", user, "--no-auth-warning"])
        .env("REDISCLI_AUTH", password)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn the_readme_tls_acl_sentinel_configuration_serves_and_follows_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_certs(d);
    std::fs::write(
        d.join("sentinel-password"),
        format!("{SENTINEL_PASSWORD}\n"),
    )
    .unwrap();
    let data = format!("tls-replication yes\nmasteruser loyalty\nmasterauth {PASSWORD}\n");
    let mut master = TlsRedis::node(d, &d.join("node0"), free_port(false), &data);
    let replica = TlsRedis::node(
        d,
        &d.join("node1"),
        free_port(false),
        &format!("{data}replicaof 127.0.0.1 {}\n", master.port),
    );
    let sentinels: Vec<TlsRedis> = (0..3).map(|i| sentinel(d, i, master.port)).collect();
    // Bounded wait until every sentinel knows the replica and its two
    // peers (else the failover could lack a candidate or a quorum).
    let mut settled = false;
    for _ in 0..600 {
        settled = sentinels.iter().all(|s| {
            let replicas = sentinel_cli(d, s.port, &["SENTINEL", "replicas", MASTER]);
            let peers = sentinel_cli(d, s.port, &["SENTINEL", "sentinels", MASTER]);
            replicas.lines().any(|l| l == "slave")
                && peers.lines().filter(|l| *l == "name").count() >= 2
        });
        if settled {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(settled, "the TLS sentinels never settled");

    let mut store = readme_store_block();
    store = swap(
        &store,
        "/run/secrets/redis-password",
        &format!("{}/redis-password", d.display()),
    );
    store = swap(
        &store,
        "/run/secrets/sentinel-password",
        &format!("{}/sentinel-password", d.display()),
    );
    store = swap(
        &store,
        "/etc/loyalty/redis-ca.pem",
        &format!("{}/ca.pem", d.display()),
    );
    store = swap(
        &store,
        "/etc/loyalty/redis-client.pem",
        &format!("{}/client.pem", d.display()),
    );
    store = swap(
        &store,
        "/etc/loyalty/redis-client.key",
        &format!("{}/client.key", d.display()),
    );
    for (i, s) in sentinels.iter().enumerate() {
        store = swap(
            &store,
            &format!("sentinel-{}.internal:26379", i + 1),
            &format!("127.0.0.1:{}", s.port),
        );
    }
    let http_port = free_port(false);
    let config = d.join("loyalty.toml");
    std::fs::write(
        &config,
        format!(
            "{store}\n\
             [http]\nbind = \"127.0.0.1:{http_port}\"\nworkers = 2\n\
             [auth]\nusers_file = \"{users}\"\n\
             [engine]\nthreads = 2\nshards = 4\n\
             [log]\nlevel = \"info\"\n\
             [demo]\ndata_file = \"\"\n",
            users = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/demo-users.toml")
                .display(),
        ),
    )
    .unwrap();
    let server = Server::start(&config, d);
    let http = Http::new(http_port);
    http.wait_ready().await;

    let number = card_number(2400);
    let phone = mobile(2400);
    http.load_cards(std::slice::from_ref(&number)).await;
    http.issue(&number).await.ok();
    http.create_contact("TLS-S-1", &phone).await.ok();
    http.bindto(&number, &phone).await.ok();
    http.active(&number).await.ok();
    let confirm =
        |id: &str| json!({"Number": number, "PurchaseId": id, "Amount": 100, "BonusToPay": 0});
    http.post("pos", "/api/purchase/confirm", confirm("tls-s-1"))
        .await
        .ok();

    // Until the replica has what was acknowledged (replication is
    // asynchronous: a replica promoted before would lack it).
    let offset = |port: u16, field: &str| {
        cli(d, port, "loyalty", PASSWORD, &["INFO", "replication"])
            .lines()
            .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
            .unwrap_or_default()
    };
    let mut synced = false;
    for _ in 0..600 {
        let master_offset = offset(master.port, "master_repl_offset:");
        synced = offset(replica.port, "master_link_status:") == "up"
            && offset(replica.port, "slave_repl_offset:") == master_offset;
        if synced {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        synced,
        "the replica never caught up:\n{}",
        std::fs::read_to_string(d.join("node1/redis.log")).unwrap_or_default()
    );

    // The master dies; the sentinels promote the replica (over TLS, with
    // their ACL users) and the server writes there, without a restart.
    master.kill9();
    let mut written = false;
    for _ in 0..600 {
        let a = http
            .post("pos", "/api/purchase/confirm", confirm("tls-s-2"))
            .await;
        if a.status == 200 {
            written = true;
            break;
        }
        assert_eq!(a.key(), "StoreUnavailable", "{}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written, "the server never wrote to the promoted replica");
    http.wait_ready().await;
    let first = http
        .post("pos", "/api/purchase/confirm", confirm("tls-s-1"))
        .await;
    first.ok();

    // The record cache's RESP3 tracking channel followed, over TLS with
    // the ACL user: established on the first master, then on the new one.
    let log_path = d.join("loyalty.log");
    let mut log = String::new();
    for _ in 0..600 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log
            .matches("cache invalidation channel established")
            .count()
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log.matches("cache invalidation channel established")
            .count()
            >= 2,
        "the tracking channel did not follow the master:\n{log}"
    );

    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(log.contains("Sentinel failover"), "{log}");
    assert!(
        !log.contains(PASSWORD) && !log.contains(SENTINEL_PASSWORD),
        "a password reached the log:\n{log}"
    );
}
