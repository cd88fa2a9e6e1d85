//! With `appendfsync always`, an acknowledged status change survives
//! `kill -9` of redis-server (restarted on the same directory) and `kill -9`
//! of the `loyalty` server itself (restarted on the same Redis).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::redis_server::{free_port, RedisServer};
use crate::support::*;

/// The real `loyalty` binary, under a watchdog shell that kills it if this
/// test process dies, so that no server outlives the test.
pub(crate) struct Server {
    watchdog: Child,
    pidfile: PathBuf,
}

impl Server {
    pub(crate) fn start(config: &Path, dir: &Path) -> Server {
        let pidfile = dir.join("loyalty.pid");
        let _ = std::fs::remove_file(&pidfile);
        let script = format!(
            "'{bin}' serve --config '{config}' >>'{log}' 2>&1 & s=$!; echo $s >'{pidfile}'; \
             while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.2; done; \
             kill -9 $s 2>/dev/null",
            bin = env!("CARGO_BIN_EXE_loyalty"),
            config = config.display(),
            log = dir.join("loyalty.log").display(),
            pidfile = pidfile.display(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("start loyalty");
        Server { watchdog, pidfile }
    }

    pub(crate) fn kill9(&mut self) {
        for _ in 0..500 {
            if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
                let _ = self.watchdog.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the server never wrote its pid");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.watchdog.try_wait().ok().flatten().is_none() {
            self.kill9();
        }
    }
}

/// Redis with `appendfsync always` and the real server on it.
fn start_stack(dir: &Path, prefix: &str) -> (RedisServer, PathBuf, u16) {
    let redis = crate::support::start_aof_always(&dir.join("redis"));
    let http_port = free_port(false);
    let config = dir.join("loyalty.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nbind = \"127.0.0.1:{http_port}\"\nworkers = 2\n\
             [store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n\
             [auth]\nusers_file = \"{users}\"\n\
             [engine]\nthreads = 2\nshards = 4\n\
             [log]\nlevel = \"warn\"\n\
             [demo]\ndata_file = \"\"\n",
            url = redis.url(),
            users = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/demo-users.toml")
                .display(),
        ),
    )
    .expect("write the config");
    (redis, config, http_port)
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn acknowledged_status_changes_survive_kill9_of_redis_and_of_the_server() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (mut redis, config, http_port) = start_stack(dir.path(), "durability");
    let mut server = Server::start(&config, dir.path());
    let http = Http::new(http_port);
    http.wait_ready().await;

    let number = card_number(1);
    let phone = mobile(1);
    http.load_cards(std::slice::from_ref(&number)).await;
    http.issue(&number).await.ok();
    http.create_contact(&format!("D-{}", std::process::id()), &phone)
        .await
        .ok();
    http.bindto(&number, &phone).await.ok();
    http.active(&number).await.ok();
    http.block(&number).await.ok();
    let blocked = http.balance(&number).await;
    blocked.ok();
    assert_eq!(blocked.body["BlockReasonCode"], "0", "{}", blocked.body);

    // kill -9 of redis-server: every acknowledged write was fsynced.
    redis.kill9();
    redis.restart();
    // The running server reconnects by itself.
    http.wait_ready().await;
    let after = http.balance(&number).await;
    after.ok();
    assert_eq!(after.body, blocked.body);
    let by_phone = http.balance_by_phone(&phone).await;
    by_phone.ok();
    assert_eq!(by_phone.body["Number"], serde_json::json!(number));

    // An acknowledged change, then kill -9 of the server.
    http.unblock(&number).await.ok();
    let unblocked = http.balance(&number).await;
    unblocked.ok();
    assert_ne!(unblocked.body["StatusCode"], blocked.body["StatusCode"]);
    server.kill9();
    let _server = Server::start(&config, dir.path());
    http.wait_ready().await;
    let after = http.balance(&number).await;
    after.ok();
    assert_eq!(after.body, unblocked.body);

    // And both at once: nothing acknowledged is lost.
    redis.kill9();
    redis.restart();
    http.wait_ready().await;
    assert_eq!(http.balance(&number).await.body, unblocked.body);
}

/// Purchases confirmed before and after a `kill -9` of the server (and of
/// Redis): replaying every PurchaseId answers exactly as the first time, and
/// the balance counts each purchase once.
#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn purchases_survive_kill9_and_replays_count_each_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (mut redis, config, http_port) = start_stack(dir.path(), "purchases");
    let mut server = Server::start(&config, dir.path());
    let http = Http::new(http_port);
    http.wait_ready().await;

    let number = card_number(2);
    let phone = mobile(2);
    http.load_cards(std::slice::from_ref(&number)).await;
    http.issue(&number).await.ok();
    http.create_contact(&format!("P-{}", std::process::id()), &phone)
        .await
        .ok();
    http.bindto(&number, &phone).await.ok();
    http.active(&number).await.ok();
    let accrual =
        serde_json::json!({"Number": number, "OperationId": "seed", "Amount": 100, "TypeCode": 0});
    http.post("marketer", "/api/card/bonus", accrual).await.ok();

    let confirm = |i: u32| serde_json::json!({"Number": number, "PurchaseId": format!("crash-{i}"), "Amount": 100, "BonusToPay": 5});
    let mut answers = Vec::new();
    for i in 0..3 {
        let a = http.post("pos", "/api/purchase/confirm", confirm(i)).await;
        a.ok();
        answers.push(a.body);
    }
    server.kill9();
    let mut server = Server::start(&config, dir.path());
    http.wait_ready().await;
    for i in 3..6 {
        let a = http.post("pos", "/api/purchase/confirm", confirm(i)).await;
        a.ok();
        answers.push(a.body);
    }
    server.kill9();
    redis.kill9();
    redis.restart();
    let _server = Server::start(&config, dir.path());
    http.wait_ready().await;

    for (i, first) in answers.iter().enumerate() {
        let again = http
            .post("pos", "/api/purchase/confirm", confirm(i as u32))
            .await;
        assert_eq!(&again.body, first, "replay of crash-{i}");
    }
    let balance = http.balance(&number).await;
    balance.ok();
    let amount = |status: &str| {
        balance.body["Bonuses"]
            .as_array()
            .expect("Bonuses")
            .iter()
            .find(|b| b["StatusCode"] == status && b["TypeCode"] == "0")
            .map_or(0.0, |b| b["Amount"].as_f64().expect("a number"))
    };
    // 100 − 6 × 5 written off; 6 × 4.75 accrued (5% of 95), still Inactive.
    assert_eq!(amount("0"), 70.0, "{}", balance.body);
    assert_eq!(amount("1"), 28.5, "{}", balance.body);
}
