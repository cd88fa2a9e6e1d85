//! A small HTTP client for the card service and key-level inspection.

use std::time::Duration;

use serde_json::{json, Value};

/// Config arguments for an AOF fsynced on every write.
pub const AOF_ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// A server in `dir` on a free port that loses no acknowledged write (AOF,
/// `appendfsync always`): the durability and fault tests.
pub fn start_aof_always(dir: &std::path::Path) -> crate::redis_server::RedisServer {
    crate::redis_server::RedisServer::start(
        dir,
        crate::redis_server::free_port(false),
        AOF_ALWAYS,
        None,
    )
}

/// Store settings as the process tests use them: one connection, no
/// record cache (each test reads what Redis holds).
pub fn redis_settings(urls: Vec<String>, prefix: &str) -> loyalty::store::redis::RedisSettings {
    loyalty::store::redis::RedisSettings {
        urls,
        key_prefix: prefix.into(),
        pool_size: 1,
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(5),
        cache_capacity: 0,
        cache_segments: 1,
        sentinel: None,
        min_replicas_acked: 0,
        replica_ack_timeout: std::time::Duration::ZERO,
        wait_pool_size: 1,
        access: Default::default(),
    }
}

/// A store on one redis-server with [`redis_settings`].
pub async fn redis_store(url: &str, prefix: &str) -> loyalty::store::redis::RedisStore {
    loyalty::store::redis::RedisStore::connect(redis_settings(vec![url.to_owned()], prefix))
        .await
        .expect("connects")
}

pub const ADMIN: &str = "admin";
pub const POS: &str = "pos";
pub const CLIENT: &str = "client";

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn key(&self) -> &str {
        self.body["Key"].as_str().unwrap_or("<no Key>")
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!((self.status, self.key()), (200, "OK"), "{}", self.body);
        self
    }
}

impl Http {
    pub fn new(port: u16) -> Http {
        Http {
            base: format!("http://127.0.0.1:{port}"),
            // Not a timing assertion: a guard so that a hang fails the test
            // instead of blocking it forever.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("answered (no hang, no reset)");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    pub async fn get(&self, login: &str, path: &str) -> Answer {
        let pw = format!("{login}-demo");
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .basic_auth(login, Some(pw)),
        )
        .await
    }

    pub async fn post(&self, login: &str, path: &str, body: Value) -> Answer {
        let pw = format!("{login}-demo");
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .basic_auth(login, Some(pw))
                .json(&body),
        )
        .await
    }

    pub async fn ready(&self) -> u16 {
        match self.client.get(format!("{}/ready", self.base)).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Polls `/ready` until it answers 200 (bounded, not a timing assertion).
    pub async fn wait_ready(&self) {
        for _ in 0..600 {
            if self.ready().await == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready", self.base);
    }

    pub async fn load_cards(&self, numbers: &[String]) {
        let cards: Vec<Value> = numbers
            .iter()
            .map(|n| json!({"Number": n, "CategoryCode": "0", "TypeCode": "0"}))
            .collect();
        self.post(ADMIN, "/api/admin/cards", Value::Array(cards))
            .await
            .ok();
    }

    pub async fn balance(&self, number: &str) -> Answer {
        self.get(POS, &format!("/api/card/balance/by/{number}"))
            .await
    }

    pub async fn balance_by_phone(&self, phone: &str) -> Answer {
        self.get(POS, &format!("/api/card/balance/by/phone/{phone}"))
            .await
    }

    pub async fn issue(&self, number: &str) -> Answer {
        self.get(ADMIN, &format!("/api/card/issue?Number={number}"))
            .await
    }

    pub async fn active(&self, number: &str) -> Answer {
        self.get(ADMIN, &format!("/api/card/active?Number={number}"))
            .await
    }

    pub async fn bindto(&self, number: &str, mobile: &str) -> Answer {
        self.post(
            ADMIN,
            "/api/card/bindto",
            json!({"Number": number, "MobileNumber": mobile}),
        )
        .await
    }

    pub async fn block(&self, number: &str) -> Answer {
        self.post(
            CLIENT,
            "/api/card/block",
            json!({"Number": number, "BlockReasonCode": "0"}),
        )
        .await
    }

    pub async fn unblock(&self, number: &str) -> Answer {
        self.post(
            ADMIN,
            "/api/card/unblock",
            json!({"Number": number, "UnBlockReasonCode": "0"}),
        )
        .await
    }

    pub async fn create_contact(&self, code: &str, mobile: &str) -> Answer {
        self.post(
            POS,
            "/api/contact",
            json!({"Code": code, "MobileNumber": mobile, "Name": "Test Person", "BirthDate": "1990-01-31"}),
        )
        .await
    }
}

/// Numbers unique to this test process.
pub fn card_number(i: u64) -> String {
    format!(
        "{:013}",
        5_000_000_000_000u64 + u64::from(std::process::id()) * 10_000 + i
    )
}

pub fn mobile(i: u64) -> String {
    format!(
        "79{:09}",
        (u64::from(std::process::id()) * 10_000 + i) % 1_000_000_000
    )
}

/// Key-level check of the cross-record indexes: every contact → card entry
/// is confirmed by the card, every mobile entry by its contact. Returns the
/// violations.
pub fn dangling_index_entries(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).expect("a redis url");
    let mut con = client.get_connection().expect("redis is up");
    let mut problems = Vec::new();
    let keys = |con: &mut redis::Connection, pattern: String| -> Vec<String> {
        redis::cmd("KEYS").arg(pattern).query(con).expect("KEYS")
    };
    let card_record = |con: &mut redis::Connection, key: String| -> Option<Value> {
        let d: Option<Vec<u8>> = redis::cmd("HGET").arg(&key).arg("d").query(con).ok()?;
        let card: loyalty::domain::Card = loyalty::store::codec::decode(&key, &d?).ok()?;
        serde_json::to_value(card).ok()
    };
    let contact_record = |con: &mut redis::Connection, key: String| -> Option<Value> {
        let d: Option<Vec<u8>> = redis::cmd("HGET").arg(&key).arg("d").query(con).ok()?;
        let contact: loyalty::domain::Contact = loyalty::store::codec::decode(&key, &d?).ok()?;
        serde_json::to_value(contact).ok()
    };
    let tag = |key: &str| -> String {
        let open = key.find('{').map_or(0, |i| i + 1);
        let close = key.rfind('}').unwrap_or(key.len());
        key[open..close].to_owned()
    };
    for key in keys(&mut con, format!("{prefix}:contact-card:*")) {
        let code = tag(&key);
        let owner: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("owner")
            .query(&mut con)
            .expect("HGET");
        let Some(owner) = owner else { continue };
        // Owners are `<record>#<attempt token>[#<replaced card>]`.
        let card_number = owner.split('#').next().unwrap_or_default();
        let card = card_record(&mut con, format!("{prefix}:card:{{{card_number}}}"));
        if card.as_ref().map(|c| c["contact"].clone()) != Some(json!(code)) {
            problems.push(format!("{key} -> card {owner} = {card:?}"));
        }
    }
    for key in keys(&mut con, format!("{prefix}:mobile:*")) {
        let number = tag(&key);
        let owner: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("owner")
            .query(&mut con)
            .expect("HGET");
        let Some(owner) = owner else { continue };
        let contact_code = owner.split('#').next().unwrap_or_default();
        let contact = contact_record(&mut con, format!("{prefix}:contact:{{{contact_code}}}"));
        if contact.as_ref().map(|c| c["mobile"].clone()) != Some(json!(number)) {
            problems.push(format!("{key} -> contact {owner} = {contact:?}"));
        }
    }
    problems
}

/// A server on the Redis at `urls` under `prefix`, on port 0, with a
/// 10,000-card owned state and short store timeouts (tests that restart
/// or lose Redis under two instances).
pub fn owning_app_settings(urls: Vec<String>, prefix: &str) -> loyalty::config::Settings {
    let mut settings = loyalty::config::Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.engine.threads = 2;
    settings.engine.shards = 4;
    settings.engine.cache_capacity = 10_000;
    settings.auth.users_file =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml");
    settings.demo.data_file = String::new();
    settings.store.backend = loyalty::config::StoreBackend::Redis;
    settings.store.url = urls;
    settings.store.key_prefix = prefix.to_owned();
    settings.store.command_timeout_ms = 500;
    settings.store.connect_timeout_ms = 200;
    settings
}

/// Starts the server; the server and a client of it.
pub async fn start_app(settings: loyalty::config::Settings) -> (loyalty::RunningApp, Http) {
    let server = tokio::task::spawn_blocking(move || loyalty::RunningApp::spawn(settings))
        .await
        .expect("join")
        .expect("the server starts");
    let http = Http::new(server.port);
    (server, http)
}

/// The card's Active bonuses of type 0, in hundredths (read again
/// while the server reconnects).
pub async fn active_bonuses(http: &Http, number: &str) -> i64 {
    let mut b = http.balance(number).await;
    for _ in 0..200 {
        if b.status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        b = http.balance(number).await;
    }
    b.ok();
    b.body["Bonuses"]
        .as_array()
        .expect("Bonuses")
        .iter()
        .filter(|l| l["StatusCode"] == "0" && l["TypeCode"] == "0")
        .map(|l| (l["Amount"].as_f64().expect("a number") * 100.0).round() as i64)
        .sum()
}

/// A manual bonus, retried while the server reconnects (503s).
pub async fn manual_bonus(http: &Http, number: &str, id: &str, amount: i64) {
    let body =
        serde_json::json!({"Number": number, "OperationId": id, "Amount": amount, "TypeCode": 0});
    for _ in 0..200 {
        let a = http.post("marketer", "/api/card/bonus", body.clone()).await;
        if a.status != 503 {
            a.ok();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("bonus {id}: Redis never came back");
}
