//! A till as the failover tests (and examples/failover_recovery.rs) play
//! it: every write carries its idempotency key, and an answer without an
//! outcome — a 503 (`StoreUnavailable`, `Overloaded`), a 408, a timeout, a
//! refused or reset connection — is sent again with the same key, to the
//! other server instance, until an outcome comes (docs/api.md §1.2, §7).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const POS: &str = "pos";
pub const ADMIN: &str = "admin";
pub const MARKETER: &str = "marketer";

/// How long a till keeps retrying one operation: far past any failover
/// the tests cause (a guard, never a timing assertion).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// The pause between two attempts of a till (short: the tests count
/// answers, not seconds, and the measurement wants to see recovery soon).
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// One write of the API and what identifies its effect in the card's
/// transactions (`Operation`, `Reference`).
#[derive(Debug, Clone)]
pub struct Op {
    pub login: &'static str,
    pub path: &'static str,
    pub body: Value,
    pub card: String,
    pub operation: &'static str,
    pub reference: String,
}

impl Op {
    pub fn confirm(card: &str, purchase_id: &str, amount: u32, pay: u32) -> Op {
        Op {
            login: POS,
            path: "/api/purchase/confirm",
            body: json!({"Number": card, "PurchaseId": purchase_id, "Amount": amount, "BonusToPay": pay}),
            card: card.into(),
            operation: "purchase",
            reference: purchase_id.into(),
        }
    }

    pub fn refund(card: &str, purchase_id: &str, refund_id: &str, amount: u32) -> Op {
        Op {
            login: POS,
            path: "/api/purchase/refund",
            body: json!({"PurchaseId": purchase_id, "RefundId": refund_id, "Amount": amount}),
            card: card.into(),
            operation: "refund",
            reference: refund_id.into(),
        }
    }

    /// A manual accrual, Active from today.
    pub fn bonus(card: &str, operation_id: &str, amount: u32) -> Op {
        Op {
            login: MARKETER,
            path: "/api/card/bonus",
            body: json!({
                "Number": card, "OperationId": operation_id, "Amount": amount,
                "TypeCode": 0, "ActiveFrom": today(), "Comment": "failover",
            }),
            card: card.into(),
            operation: "bonus",
            reference: operation_id.into(),
        }
    }
}

pub fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// What one request got: an HTTP answer, or none at all.
pub enum Reply {
    Answer(u16, Value),
    Nothing(String),
}

/// How a till's operation ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The final answer (`None`: gave up without one).
    pub status: Option<u16>,
    pub body: Value,
    /// The instance that gave the final answer.
    pub instance: usize,
    /// Attempts that got no outcome (503, 408, no answer).
    pub no_outcome: u32,
    /// 503 answers among them.
    pub unavailable: u32,
    /// When the attempt that got the final answer was sent, and when that
    /// answer came.
    pub sent: Instant,
    pub done: Instant,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == Some(200) && self.body["Key"] == "OK"
    }
}

#[derive(Clone)]
pub struct Till {
    client: reqwest::Client,
    pub bases: Vec<String>,
}

impl Till {
    pub fn new(bases: Vec<String>) -> Till {
        Till {
            // A till's own timeout: past it the answer is "no outcome".
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
            bases,
        }
    }

    pub async fn request(
        &self,
        instance: usize,
        login: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Reply {
        let url = format!("{}{path}", self.bases[instance % self.bases.len()]);
        let req = match body {
            Some(b) => self.client.post(url).json(b),
            None => self.client.get(url),
        }
        .basic_auth(login, Some(format!("{login}-demo")));
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(text) => Reply::Answer(
                        status,
                        serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    ),
                    Err(e) => Reply::Nothing(e.to_string()),
                }
            }
            Err(e) => Reply::Nothing(e.to_string()),
        }
    }

    /// Sends `op` until it has an outcome, starting at instance `first`
    /// and moving to the other instance after each attempt without one.
    pub async fn send(&self, op: &Op, first: usize) -> Outcome {
        let started = Instant::now();
        let mut no_outcome = 0;
        let mut unavailable = 0;
        let mut instance = first;
        loop {
            let sent = Instant::now();
            let reply = self
                .request(instance, op.login, op.path, Some(&op.body))
                .await;
            let done = Instant::now();
            let (status, body) = match reply {
                Reply::Answer(status, body) if !matches!(status, 503 | 408) => {
                    return Outcome {
                        status: Some(status),
                        body,
                        instance: instance % self.bases.len(),
                        no_outcome,
                        unavailable,
                        sent,
                        done,
                    }
                }
                Reply::Answer(status, body) => (Some(status), body),
                Reply::Nothing(e) => (None, Value::String(e)),
            };
            no_outcome += 1;
            if status == Some(503) {
                unavailable += 1;
            }
            if started.elapsed() > GIVE_UP_AFTER {
                return Outcome {
                    status: None,
                    body,
                    instance: instance % self.bases.len(),
                    no_outcome,
                    unavailable,
                    sent,
                    done,
                };
            }
            instance += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// A GET answered 200 OK, retried like a write while the store is
    /// failing over (reads in the checks run once the cluster is healthy,
    /// but a client may still meet a connection from before).
    pub async fn get_ok(&self, instance: usize, login: &str, path: &str) -> Value {
        for _ in 0..500 {
            match self.request(instance, login, path, None).await {
                Reply::Answer(200, body) => return body,
                Reply::Answer(503 | 408, _) | Reply::Nothing(_) => {
                    tokio::time::sleep(RETRY_PAUSE).await
                }
                Reply::Answer(status, body) => panic!("GET {path}: {status} {body}"),
            }
        }
        panic!("GET {path} never answered 200 on instance {instance}");
    }
}
