//! `spawn_app()` and typed request helpers shared by every test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use loyalty::config::Settings;
use loyalty::RunningApp;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// The demo users (config/demo-users.toml): login, password, one per role.
pub const POS: &str = "pos";
pub const CLIENT: &str = "client";
pub const CC_OPERATOR: &str = "cc_operator";
pub const MARKETER: &str = "marketer";
pub const SENIOR: &str = "senior";
pub const DIRECTOR: &str = "director";
pub const ADMIN: &str = "admin";
pub const ALL_USERS: [&str; 7] = [POS, CLIENT, CC_OPERATOR, MARKETER, SENIOR, DIRECTOR, ADMIN];

pub fn password(login: &str) -> String {
    format!("{login}-demo")
}

/// The demo login of each role name of docs/api.md §2.
pub fn login_of_role(role: &str) -> &'static str {
    match role {
        "pos" => POS,
        "client" => CLIENT,
        "cc_operator" => CC_OPERATOR,
        "marketer" => MARKETER,
        "senior_employee" => SENIOR,
        "director" => DIRECTOR,
        "administrator" => ADMIN,
        other => panic!("unknown role {other}"),
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A card number no other test uses (13 digits).
pub fn unique_card() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:013}",
        4_000_000_000_000u64 + u64::from(std::process::id()) * 100_000 + n
    )
}

/// A mobile number (11 digits, normalized) no other test uses.
pub fn unique_mobile() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "79{:09}",
        (u64::from(std::process::id()) * 10_000 + n) % 1_000_000_000
    )
}

pub fn unique_code() -> String {
    format!(
        "T-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            loyalty::telemetry::init(&Settings::defaults().log);
        }
    });
}

pub fn test_settings() -> Settings {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut s = Settings::defaults();
    s.http.bind = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.engine.threads = 2;
    s.engine.shards = 4;
    s.auth.users_file = root.join("config/demo-users.toml");
    s.demo.data_file = String::new();
    s
}

#[path = "../common/redis_server.rs"]
// The Sentinel harness there serves the process-level suites, not this one.
#[allow(dead_code)]
pub mod redis_server;

/// The store backend of this test run: LOYALTY_TEST_BACKEND = memory
/// (default) | redis (one real redis-server) | cluster (a real 3-master
/// Redis Cluster). The Redis servers are started once per test process and
/// die with it.
pub enum Backend {
    Memory,
    Redis {
        urls: Vec<String>,
        _single: Option<redis_server::RedisServer>,
        _cluster: Option<redis_server::RedisCluster>,
    },
}

pub fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let chosen = std::env::var("LOYALTY_TEST_BACKEND").unwrap_or_default();
        let dir = || {
            tempfile::Builder::new()
                .prefix("loyalty-test-redis-")
                .tempdir()
                .expect("a temp dir")
                // Removed by the servers' watchdog when this process ends.
                .keep()
        };
        match chosen.as_str() {
            "" | "memory" => Backend::Memory,
            "redis" => {
                let dir = dir();
                let port = redis_server::free_port(false);
                let server = redis_server::RedisServer::start(&dir, port, &[], Some(&dir));
                Backend::Redis {
                    urls: vec![server.url()],
                    _single: Some(server),
                    _cluster: None,
                }
            }
            "cluster" => {
                let cluster = redis_server::RedisCluster::start(&dir(), true);
                Backend::Redis {
                    urls: cluster.urls(),
                    _single: None,
                    _cluster: Some(cluster),
                }
            }
            other => panic!("LOYALTY_TEST_BACKEND = {other:?}: expected memory, redis or cluster"),
        }
    })
}

/// A key prefix no other app of any test run uses.
pub fn unique_prefix() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Points `settings` at the test run's store, under `prefix`.
pub fn use_backend(settings: &mut Settings, prefix: &str) {
    if let Backend::Redis { urls, .. } = backend() {
        settings.store.backend = loyalty::config::StoreBackend::Redis;
        settings.store.url = urls.clone();
        settings.store.key_prefix = prefix.to_owned();
    }
}

/// Does the backend let two server instances share one store?
pub fn shared_store() -> bool {
    matches!(backend(), Backend::Redis { .. })
}

/// For the tests marked `#[ignore = "needs a shared store…"]`, run anyway
/// (`--include-ignored`) on the memory store: fail, never pass by skipping.
pub fn require_shared_store() {
    assert!(
        shared_store(),
        "this test needs two server instances on one store: run it with LOYALTY_TEST_BACKEND=redis or cluster"
    );
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub server: Option<RunningApp>,
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn key(&self) -> &str {
        self.body["Key"].as_str().unwrap_or("<no Key>")
    }

    /// Asserts the status, the Key and the envelope's consistency.
    #[track_caller]
    pub fn expect(&self, status: u16, key: &str) -> &Self {
        assert_eq!(
            (self.status, self.key()),
            (status, key),
            "unexpected answer: {}",
            self.body
        );
        assert_eq!(self.body["Status"], json!(key == "OK"), "{}", self.body);
        assert!(self.body["Value"].is_string(), "{}", self.body);
        if key == "OK" {
            assert_eq!(self.body["Value"], json!(""), "{}", self.body);
        } else {
            assert_ne!(
                self.body["Value"],
                json!(""),
                "an error names its reason: {}",
                self.body
            );
        }
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect(200, "OK")
    }

    pub fn value(&self) -> &str {
        self.body["Value"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let mut settings = test_settings();
    // Starting the servers blocks; keep it off the async test runtime.
    tokio::task::spawn_blocking(backend).await.unwrap();
    use_backend(&mut settings, &unique_prefix());
    change(&mut settings);
    let server = tokio::task::spawn_blocking(move || RunningApp::spawn(settings))
        .await
        .unwrap()
        .expect("the server starts");
    TestApp {
        address: format!("http://127.0.0.1:{}", server.port),
        client: reqwest::Client::new(),
        server: Some(server),
    }
}

impl TestApp {
    /// Sends the request; every answer is checked against the error table
    /// of docs/openapi.json (see `documented`).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let (client, request) = req.build_split();
        let request = request.expect("a valid request");
        let method = request.method().clone();
        let path = request.url().path().to_owned();
        let resp = client
            .execute(request)
            .await
            .expect("the request is answered");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text));
        crate::documented::check(&method, &path, status, &body);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, login: &str, path: &str) -> Resp {
        self.send(
            self.client
                .get(self.url(path))
                .basic_auth(login, Some(password(login))),
        )
        .await
    }

    pub async fn post(&self, login: &str, path: &str, body: Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .basic_auth(login, Some(password(login)))
                .json(&body),
        )
        .await
    }

    pub async fn post_raw(&self, login: &str, path: &str, body: impl Into<reqwest::Body>) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .basic_auth(login, Some(password(login)))
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await
    }

    // --- the card service -------------------------------------------------

    pub async fn balance(&self, number: &str) -> Resp {
        self.get(POS, &format!("/api/card/balance/by/{number}"))
            .await
    }

    pub async fn balance_by_phone(&self, phone: &str) -> Resp {
        self.get(POS, &format!("/api/card/balance/by/phone/{phone}"))
            .await
    }

    pub async fn balance_by_code(&self, code: &str) -> Resp {
        self.get(POS, &format!("/api/card/balance/by/code/{code}"))
            .await
    }

    pub async fn status_of(&self, number: &str) -> String {
        let r = self.balance(number).await;
        r.ok();
        r.body["StatusCode"].as_str().unwrap().to_owned()
    }

    pub async fn issue(&self, login: &str, number: &str) -> Resp {
        self.get(login, &format!("/api/card/issue?Number={number}"))
            .await
    }

    pub async fn bindto(&self, login: &str, number: &str, mobile: &str) -> Resp {
        self.post(
            login,
            "/api/card/bindto",
            json!({"Number": number, "MobileNumber": mobile}),
        )
        .await
    }

    pub async fn active(&self, login: &str, number: &str) -> Resp {
        self.get(login, &format!("/api/card/active?Number={number}"))
            .await
    }

    pub async fn block(&self, login: &str, number: &str, reason: &str) -> Resp {
        self.post(
            login,
            "/api/card/block",
            json!({"Number": number, "BlockReasonCode": reason}),
        )
        .await
    }

    pub async fn unblock(&self, login: &str, number: &str, reason: &str) -> Resp {
        self.post(
            login,
            "/api/card/unblock",
            json!({"Number": number, "UnBlockReasonCode": reason}),
        )
        .await
    }

    // --- data -------------------------------------------------------------

    pub async fn load_cards(&self, numbers: &[&str]) -> Resp {
        let cards: Vec<Value> = numbers
            .iter()
            .map(|n| json!({"Number": n, "CategoryCode": "0", "TypeCode": "0"}))
            .collect();
        let r = self
            .post(ADMIN, "/api/admin/cards", Value::Array(cards))
            .await;
        r.ok();
        r
    }

    /// A new card in New status.
    pub async fn new_card(&self) -> String {
        let number = unique_card();
        self.load_cards(&[&number]).await;
        number
    }

    /// A contact with a fresh mobile; `sufficient` fills Name and BirthDate.
    pub async fn new_contact(&self, sufficient: bool) -> Contact {
        let code = unique_code();
        let mobile = unique_mobile();
        let mut body = json!({"Code": code, "MobileNumber": mobile});
        if sufficient {
            body["Name"] = json!("Test Person");
            body["BirthDate"] = json!("1990-01-31");
        }
        self.post(POS, "/api/contact", body).await.ok();
        Contact { code, mobile }
    }

    /// A card brought into `state` through the API, with its contact (if bound).
    pub async fn card_in(&self, state: State) -> (String, Option<Contact>) {
        let number = self.new_card().await;
        if state == State::New {
            return (number, None);
        }
        self.issue(ADMIN, &number).await.ok();
        if state == State::IssuedUnbound {
            return (number, None);
        }
        let contact = self.new_contact(true).await;
        self.bindto(ADMIN, &number, &contact.mobile).await.ok();
        match state {
            State::IssuedBound => {}
            State::Active => {
                self.active(ADMIN, &number).await.ok();
            }
            State::Blocked => {
                self.active(ADMIN, &number).await.ok();
                self.block(CLIENT, &number, "0").await.ok();
            }
            State::BlockedForReplacement => {
                self.active(ADMIN, &number).await.ok();
                self.block(CC_OPERATOR, &number, "4").await.ok();
            }
            State::New | State::IssuedUnbound => unreachable!(),
        }
        (number, Some(contact))
    }
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub code: String,
    pub mobile: String,
}

/// The card states of docs/api.md §4 that tests start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    New,
    IssuedUnbound,
    IssuedBound,
    Active,
    /// Blocked by a client as lost (reason 0).
    Blocked,
    BlockedForReplacement,
}

pub const ALL_STATES: [State; 6] = [
    State::New,
    State::IssuedUnbound,
    State::IssuedBound,
    State::Active,
    State::Blocked,
    State::BlockedForReplacement,
];
