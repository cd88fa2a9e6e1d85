//! Redis as managed offerings run it: TLS only (`--port 0`), the default
//! user off, an ACL user whose password the server reads from a file. The
//! real `loyalty` binary serves a purchase over it (pool, RESP3 tracking
//! channel and `loyalty export` all through the same settings), and refuses
//! to start, saying why, on a CA that did not sign Redis' certificate or on
//! a wrong password — without printing the password. The configuration
//! written here is the one docs/operations.md shows ("Running on Redis").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::durability::Server;
use crate::redis_server::free_port;
use crate::support::*;

pub(crate) const PASSWORD: &str = "pw-7f3a9c41e2-not-in-any-log";

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes `name.pem` and `name.key`, a certificate this CA signed.
    fn issue(&self, dir: &Path, name: &str, params: CertificateParams) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// A TLS-only redis-server (client certificates required) with the ACL
/// user `loyalty`, under a watchdog shell that kills it once this test
/// process is gone.
pub(crate) struct TlsRedis {
    pub(crate) port: u16,
    dir: PathBuf,
    watchdog: Child,
}

/// The CA, Redis' certificate (localhost, 127.0.0.1), our client
/// certificate, an unrelated CA, and the password file, in `dir`.
pub(crate) fn write_certs(dir: &Path) {
    let ca = Ca::new("redis test CA");
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    ca.issue(dir, "redis", server);
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "loyalty");
    ca.issue(dir, "client", client);
    std::fs::write(dir.join("wrong-ca.pem"), Ca::new("another CA").cert.pem()).unwrap();
    std::fs::write(dir.join("redis-password"), format!("{PASSWORD}\n")).unwrap();
}

impl TlsRedis {
    /// One node in `dir`, certificates and password from [`write_certs`].
    fn start(dir: &Path) -> TlsRedis {
        write_certs(dir);
        Self::node(dir, &dir.join("node"), free_port(false), "")
    }

    /// A node in `node_dir` with the certificates of `certs`, and `extra`
    /// lines of config.
    pub(crate) fn node(certs: &Path, node_dir: &Path, port: u16, extra: &str) -> TlsRedis {
        Self::node_with_args(certs, node_dir, port, extra, "")
    }

    /// As [`TlsRedis::node`], with `args` after the config file on
    /// redis-server's command line (`--sentinel`). `port` may be taken by
    /// another process before redis-server binds it (`free_port`): then
    /// another port; read the one it runs on from the answer.
    pub(crate) fn node_with_args(
        certs: &Path,
        node_dir: &Path,
        port: u16,
        extra: &str,
        args: &str,
    ) -> TlsRedis {
        let mut port = port;
        for _ in 0..5 {
            if let Some(node) = Self::try_node(certs, node_dir, port, extra, args) {
                return node;
            }
            port = free_port(false);
        }
        panic!(
            "redis-server in {} kept losing its port",
            node_dir.display()
        );
    }

    /// `None`: the port was taken.
    fn try_node(
        certs: &Path,
        node_dir: &Path,
        port: u16,
        extra: &str,
        args: &str,
    ) -> Option<TlsRedis> {
        std::fs::create_dir_all(node_dir).unwrap();
        // A log of its own per attempt: "Ready" must be this one's.
        let _ = std::fs::remove_file(node_dir.join("redis.log"));
        let c = certs.display();
        // The ACL user's password is in Redis' own config file, not on its
        // command line.
        let d = node_dir.display();
        std::fs::write(
            node_dir.join("redis.conf"),
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1 -::1\nprotected-mode no\n\
                 dir {d}\nsave \"\"\nlogfile {d}/redis.log\npidfile {d}/redis.pid\n\
                 tls-cert-file {c}/redis.pem\ntls-key-file {c}/redis.key\n\
                 tls-ca-cert-file {c}/ca.pem\ntls-auth-clients yes\n\
                 user default off\n\
                 user loyalty on >{PASSWORD} ~* &* +@all\n{extra}"
            ),
        )
        .unwrap();
        let dir = node_dir;
        let script = format!(
            "redis-server '{d}/redis.conf' {args} & r=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             kill -9 $r 2>/dev/null; wait $r 2>/dev/null",
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        // Owned before the wait, so that its Drop stops it on a failure.
        let mut redis = TlsRedis {
            port,
            dir: dir.to_owned(),
            watchdog,
        };
        // Bounded wait for the log line (not a timing assertion).
        for _ in 0..500 {
            let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            // A sentinel says neither: it is up once it monitors.
            if log.contains("Ready to accept connections") || log.contains("+monitor master") {
                return Some(redis);
            }
            if log.contains("Failed listening on port") {
                // It exits by itself; nothing of it to kill.
                let _ = redis.watchdog.wait();
                let _ = std::fs::remove_file(dir.join("redis.pid"));
                return None;
            }
            assert!(
                !log.contains("# Failed") && !log.contains("FATAL"),
                "redis-server did not start with TLS:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server never became ready");
    }
}

impl TlsRedis {
    /// `kill -9` of redis-server, now.
    pub(crate) fn kill9(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("redis.pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        let _ = self.watchdog.wait();
        // A killed redis-server leaves its pid file: without this, Drop
        // would kill that pid again at the end of the test — by then
        // possibly another test's process (pids are reused; 32768 of them
        // go fast with parallel tests forking redis-cli and watchdogs).
        let _ = std::fs::remove_file(self.dir.join("redis.pid"));
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        match std::fs::read_to_string(self.dir.join("redis.pid")) {
            Ok(pid) => {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
            }
            // Never started: the shell alone is left (no wait forever).
            Err(_) => {
                let _ = self.watchdog.kill();
            }
        }
        let _ = self.watchdog.wait();
    }
}

/// The server's config: `url` the TOML value of `store.url`, `ca` the CA
/// file it trusts, `password` the file its password is read from.
fn write_config(dir: &Path, url: &str, ca: &str, password: &str) -> (PathBuf, u16) {
    let http_port = free_port(false);
    let d = dir.display();
    let config = dir.join("loyalty.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nbind = \"127.0.0.1:{http_port}\"\nworkers = 2\n\
             [store]\nbackend = \"redis\"\n\
             url = {url}\n\
             username = \"loyalty\"\n\
             password_file = \"{d}/{password}\"\n\
             key_prefix = \"tls\"\n\
             [store.tls]\n\
             ca_file = \"{d}/{ca}\"\n\
             cert_file = \"{d}/client.pem\"\n\
             key_file = \"{d}/client.key\"\n\
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
    (config, http_port)
}

/// Waits (bounded: a guard, not a timing assertion) for the record
/// cache's tracking channel to be up on every master.
async fn tracking_established(log_path: &Path) {
    let mut log = String::new();
    for _ in 0..600 {
        log = std::fs::read_to_string(log_path).unwrap_or_default();
        if log.contains("cache invalidation channel established") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the tracking channel never came up:\n{log}");
}

/// `store.url` for one node, by name (the certificate's name is checked).
fn single(redis: &TlsRedis) -> String {
    format!("\"rediss://localhost:{}/0\"", redis.port)
}

/// `loyalty serve` that must stop by itself: its exit status and output.
/// The bound only keeps a regression from hanging the run.
fn refused_start(config: &Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loyalty");
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.success(), text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "the server kept running instead of refusing to start:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_purchase_is_served_over_tls_by_an_acl_user_with_a_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let redis = TlsRedis::start(dir.path());
    let (config, http_port) = write_config(dir.path(), &single(&redis), "ca.pem", "redis-password");
    let server = Server::start(&config, dir.path());
    let http = Http::new(http_port);
    http.wait_ready().await;

    let number = card_number(23);
    let phone = mobile(23);
    http.load_cards(std::slice::from_ref(&number)).await;
    http.issue(&number).await.ok();
    http.create_contact("TLS-1", &phone).await.ok();
    http.bindto(&number, &phone).await.ok();
    http.active(&number).await.ok();
    let confirm = serde_json::json!({"Number": number, "PurchaseId": "tls-1", "Amount": 100, "BonusToPay": 0});
    let first = http
        .post("pos", "/api/purchase/confirm", confirm.clone())
        .await;
    first.ok();
    assert_eq!(
        http.post("pos", "/api/purchase/confirm", confirm)
            .await
            .body,
        first.body
    );
    // The record cache's RESP3 tracking channel came up over the same
    // TLS and ACL user.
    let log_path = dir.path().join("loyalty.log");
    tracking_established(&log_path).await;

    // `loyalty export` reaches the same Redis with the same settings.
    let dump = Command::new(env!("CARGO_BIN_EXE_loyalty"))
        .arg("export")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.status.success() && text.contains(&number),
        "{text}{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.contains(PASSWORD),
        "the password reached the log:\n{log}"
    );
    assert!(!String::from_utf8_lossy(&dump.stderr).contains(PASSWORD));
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_redis_certificate_from_another_ca_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let redis = TlsRedis::start(dir.path());
    let (config, _) = write_config(
        dir.path(),
        &single(&redis),
        "wrong-ca.pem",
        "redis-password",
    );
    let (ok, out) = refused_start(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("store.url") && out.contains("certificate"),
        "the error should say the certificate was refused:\n{out}"
    );
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_wrong_password_stops_the_start_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let redis = TlsRedis::start(dir.path());
    let wrong = "wrong-0b5e77d1-password";
    std::fs::write(dir.path().join("wrong-password"), wrong).unwrap();
    let (config, _) = write_config(dir.path(), &single(&redis), "ca.pem", "wrong-password");
    let (ok, out) = refused_start(&config);
    assert!(!ok, "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    assert!(!out.contains(wrong) && !out.contains(PASSWORD), "{out}");
}

#[tokio::test]
#[ignore = "needs redis-server (scripts/test.sh runs it: --include-ignored)"]
async fn a_three_master_cluster_over_tls_serves_a_purchase() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path());
    let cluster_conf = "cluster-enabled yes\ncluster-config-file nodes.conf\n\
                        cluster-node-timeout 2000\ntls-cluster yes\n";
    let nodes: Vec<TlsRedis> = (0..3)
        .map(|i| {
            TlsRedis::node(
                dir.path(),
                &dir.path().join(format!("node{i}")),
                free_port(true),
                cluster_conf,
            )
        })
        .collect();
    let d = dir.path().display();
    // redis-cli takes the password on its command line: the test's tool,
    // not the server, which reads it from the file.
    let mut create = Command::new("redis-cli");
    create.args(["--tls", "--cacert", &format!("{d}/ca.pem")]);
    create.args([
        "--cert",
        &format!("{d}/client.pem"),
        "--key",
        &format!("{d}/client.key"),
    ]);
    create.args(["--user", "loyalty", "--pass", PASSWORD, "--no-auth-warning"]);
    create.args(["--cluster", "create"]);
    for n in &nodes {
        create.arg(format!("127.0.0.1:{}", n.port));
    }
    let out = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"rediss://127.0.0.1:{}\"", n.port))
        .collect();
    let (config, http_port) = write_config(
        dir.path(),
        &format!("[{}]", urls.join(", ")),
        "ca.pem",
        "redis-password",
    );
    let _server = Server::start(&config, dir.path());
    let http = Http::new(http_port);
    // /ready waits for cluster_state:ok on every master.
    http.wait_ready().await;
    let numbers: Vec<String> = (0..6).map(|i| card_number(2300 + i)).collect();
    http.load_cards(&numbers).await;
    for (i, number) in numbers.iter().enumerate() {
        let phone = mobile(2300 + i as u64);
        http.issue(number).await.ok();
        http.create_contact(&format!("TLSC-{i}"), &phone).await.ok();
        http.bindto(number, &phone).await.ok();
        http.active(number).await.ok();
        let confirm = serde_json::json!({"Number": number, "PurchaseId": format!("tlsc-{i}"), "Amount": 100, "BonusToPay": 0});
        http.post("pos", "/api/purchase/confirm", confirm)
            .await
            .ok();
    }
    tracking_established(&dir.path().join("loyalty.log")).await;
    let log = std::fs::read_to_string(dir.path().join("loyalty.log")).unwrap_or_default();
    assert!(
        !log.contains(PASSWORD),
        "the password reached the log:\n{log}"
    );
}
