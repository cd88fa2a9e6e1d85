//! A plain API client (outside goose): data set preparation, `/metrics`
//! scrapes, and looking up where a run should start.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

/// `login:password`, as given on the command line.
#[derive(Debug, Clone)]
pub struct Cred {
    pub login: String,
    pub password: String,
}

impl std::str::FromStr for Cred {
    type Err = String;

    fn from_str(s: &str) -> Result<Cred, String> {
        let (login, password) = s
            .split_once(':')
            .ok_or_else(|| "credentials must be LOGIN:PASSWORD".to_owned())?;
        if login.is_empty() {
            return Err("the login is empty".into());
        }
        Ok(Cred {
            login: login.to_owned(),
            password: password.to_owned(),
        })
    }
}

impl Cred {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        let raw = format!("{}:{}", self.login, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Who the load test acts as: one login per role it needs.
#[derive(clap::Args, Debug, Clone)]
pub struct Creds {
    /// Administrator: loads cards, repairs cards left blocked.
    #[arg(
        long,
        default_value = "admin:admin-demo",
        value_name = "LOGIN:PASSWORD"
    )]
    pub admin: Cred,
    /// Marketer: gives the manual bonuses.
    #[arg(
        long,
        default_value = "marketer:marketer-demo",
        value_name = "LOGIN:PASSWORD"
    )]
    pub marketer: Cred,
    /// The till (role pos): balances, purchases, issue/bind/activate.
    #[arg(long, default_value = "pos:pos-demo", value_name = "LOGIN:PASSWORD")]
    pub pos: Cred,
    /// The contact centre (role cc_operator): block and unblock.
    #[arg(
        long = "call-centre",
        default_value = "cc_operator:cc_operator-demo",
        value_name = "LOGIN:PASSWORD"
    )]
    pub cc: Cred,
}

/// An error answer: the envelope's Key (or the transport failure).
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub key: String,
    pub value: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.key, self.value)
    }
}

impl std::error::Error for ApiFailure {}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Calls the API; `Ok` only for a success envelope (`Status: true`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        cred: &Cred,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, cred.header());
        if let Some(body) = body {
            rb = rb
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let resp = rb
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if value.get("Status") == Some(&Value::Bool(true)) && (200..300).contains(&status) {
            return Ok(value);
        }
        Err(ApiFailure {
            status,
            key: value
                .get("Key")
                .and_then(Value::as_str)
                .unwrap_or("NotAnEnvelope")
                .to_owned(),
            value: value
                .get("Value")
                .and_then(Value::as_str)
                .map_or_else(|| text.chars().take(200).collect(), str::to_owned),
        })
        .with_context(|| format!("{method} {path}"))
    }

    /// A GET without credentials (`/health`, `/ready`, `/metrics`).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        if !resp.status().is_success() {
            bail!("GET {path}: HTTP {}", resp.status());
        }
        Ok(resp.text().await?)
    }

    /// Waits until `/ready` answers (at most `secs`).
    pub async fn wait_ready(&self, secs: u64) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match self.get_text("/ready").await {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(anyhow!("{} is not ready: {e:#}", self.base))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The card's status code and whether it is bound, from a balance answer.
pub fn card_state(balance: &Value) -> (String, bool) {
    let status = balance
        .get("StatusCode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let bound = balance
        .get("Code")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    (status, bound)
}
