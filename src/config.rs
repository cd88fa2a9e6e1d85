//! Settings: `config/default.toml` (compiled in, so the binary always has
//! its defaults), then each `--config FILE` in order, then environment
//! variables `LOYALTY__<SECTION>__<KEY>`. Option names carry their units.

use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Deserializer};

mod choices;
pub mod redact;
#[cfg(test)]
mod reference_tests;

pub use choices::{LogFormat, StoreBackend};

pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub activation: ActivationSettings,
    pub engine: EngineConfig,
    pub card: CardSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub bonus: BonusSettings,
    pub events: EventsSettings,
    pub archive: ArchiveSettings,
    pub history: HistorySettings,
    pub bulk: BulkSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// `GET /metrics` (docs/runbook.md, "Who may read /metrics").
#[derive(Clone, Default, Deserialize)]
pub struct MetricsSettings {
    /// SHA-256 (hex) of a bearer token that a scrape must send
    /// (`Authorization: Bearer <token>`); empty: anonymous, as before.
    #[serde(default)]
    pub bearer_token_sha256: String,
}

/// Like a user's `token_sha256`, the digest is shown only as set or not:
/// a debug print is no place to collect what a scrape must match.
impl std::fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSettings")
            .field(
                "bearer_token_sha256_set",
                &!self.bearer_token_sha256.is_empty(),
            )
            .finish()
    }
}

/// How much of a card's history Redis keeps (docs/adr/0009).
#[derive(Debug, Clone, Deserialize)]
pub struct HistorySettings {
    /// The newest entries per card that stay in Redis once the archive has
    /// them; older ones are read from the archive. Without an archive
    /// nothing is trimmed.
    pub hot_entries: u64,
}

/// `loyalty archive` (docs/adr/0009-change-stream-and-archive.md).
#[derive(Clone, Deserialize)]
pub struct ArchiveSettings {
    /// libpq connection string or `postgres://` URL; "" = no archive. May
    /// hold a password: never logged (see the `Debug` below).
    pub postgres_url: String,
    /// This archiver's consumer name in the group; "" = `<host>-<pid>`.
    pub consumer: String,
    /// Events read (and stored in one transaction) per round at most.
    pub batch_max: usize,
    /// Events taken from one stream per round at most.
    pub per_stream: usize,
    /// Pause after a round that found nothing.
    pub poll_idle_ms: u64,
    /// Events another consumer has held this long unacknowledged are taken
    /// over (it died or hangs).
    pub claim_min_idle_ms: u64,
    /// Delete archived events from the streams (else only trimming does).
    pub delete_archived: bool,
}

impl std::fmt::Debug for ArchiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSettings")
            .field(
                "postgres_url",
                &if self.postgres_url.is_empty() {
                    ""
                } else {
                    "<set, not shown>"
                },
            )
            .field("consumer", &self.consumer)
            .field("batch_max", &self.batch_max)
            .field("per_stream", &self.per_stream)
            .field("poll_idle_ms", &self.poll_idle_ms)
            .field("claim_min_idle_ms", &self.claim_min_idle_ms)
            .field("delete_archived", &self.delete_archived)
            .finish()
    }
}

/// The change stream (docs/events.md).
#[derive(Debug, Clone, Deserialize)]
pub struct EventsSettings {
    /// Events each stream keeps while no one has consumed them (Redis: one
    /// stream per cluster slot, trimmed approximately); 0: no events.
    pub stream_max_len: u64,
}

/// Data loading, export and import (docs/api.md §8).
#[derive(Debug, Clone, Deserialize)]
pub struct BulkSettings {
    /// A streamed line longer than this is rejected, and skipped without
    /// being held in memory.
    pub max_line_bytes: usize,
    /// Rejected lines listed in an answer; `Rejected` counts them all.
    pub max_listed_rejections: usize,
    /// Cards written to the store per batch.
    pub card_batch: usize,
    /// Contact lines (and import records) in flight at once.
    pub parallelism: usize,
    /// Records per store page of an export.
    pub export_page: usize,
    /// How often a long load or export logs its progress.
    pub progress_interval_secs: u64,
    /// The longest a bulk load or import may run (its body streaming in);
    /// past it the load stops with 408 and its counts. 0: no limit.
    #[serde(default = "default_max_stream_secs")]
    pub max_stream_secs: u64,
}

fn default_max_stream_secs() -> u64 {
    4 * 3600
}

/// Purchase rules (docs/api.md §7). Percentages may have up to two decimals
/// (`2.5`); they are kept as exact basis points.
#[derive(Debug, Clone, Deserialize)]
pub struct BonusSettings {
    #[serde(deserialize_with = "basis_points")]
    pub accrual_percent: i64,
    pub activation_delay_days: i64,
    pub expiry_days: i64,
    #[serde(deserialize_with = "basis_points")]
    pub max_writeoff_percent: i64,
    #[serde(deserialize_with = "basis_points")]
    pub discount_percent: i64,
    /// How long PurchaseId/RefundId/OperationId outcomes are kept (and so
    /// how long a purchase can be cancelled or refunded).
    pub idempotency_retention_secs: u64,
    /// How far back a confirm's `Date` may lie (offline tills); never more
    /// than `idempotency_retention_secs`, whatever is configured.
    pub purchase_date_max_age_secs: u64,
    /// How far ahead of the server's clock a confirm's `Date` may lie
    /// (till clock skew, local dates ahead of UTC).
    pub purchase_date_max_ahead_secs: u64,
    /// A hold's life when the request names no `HoldSecs` (issue 24).
    #[serde(default = "default_hold_secs")]
    pub hold_secs: u64,
    /// The longest `HoldSecs` a hold may ask for (longer is capped).
    #[serde(default = "default_hold_max_secs")]
    pub hold_max_secs: u64,
}

fn default_hold_secs() -> u64 {
    900
}

fn default_hold_max_secs() -> u64 {
    3600
}

/// A percentage 0–100 with at most two decimals → basis points.
fn basis_points<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
        Text(String),
    }
    let text = match Num::deserialize(d)? {
        Num::Int(i) => i.to_string(),
        // The shortest text that reads back as the same float: "2.5", not
        // "2.4999999"; a value with more than two decimals is refused below.
        Num::Float(f) => f.to_string(),
        Num::Text(t) => t,
    };
    let bp = crate::domain::Amount::parse(&text)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a percentage with at most 2 decimals"
            ))
        })?
        .hundredths();
    if bp > 10_000 {
        return Err(serde::de::Error::custom(format!(
            "{text} is more than 100 percent"
        )));
    }
    Ok(bp)
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: String,
    /// 0: one per core.
    pub workers: usize,
    pub max_body_bytes: usize,
    /// Data loading takes larger bodies than the card methods.
    pub admin_max_body_bytes: usize,
    /// For tills that treat any non-200 as a transport failure: answer
    /// business errors with HTTP 200 and `Status: false`.
    pub business_errors_as_200: bool,
    pub shutdown_timeout_secs: u64,
    pub keep_alive_secs: u64,
    /// Every request head must arrive within this long of its first byte
    /// (a connection's first one: of the connection), else 408
    /// `RequestTimeout` (slow or stuck clients hold no worker).
    pub request_head_timeout_ms: u64,
    /// A request body must arrive within this long of its head, else 408
    /// (the streamed data-loading bodies have only the idle limit).
    pub request_body_timeout_ms: u64,
    /// Within a request (head or body), this long without a byte ends it.
    pub read_idle_timeout_ms: u64,
    /// Open connections per client address (IPv6: per /64) on each
    /// listener; more are closed at once.
    pub max_connections_per_address: usize,
    /// Demo users have published passwords: refuse them on a non-loopback
    /// bind unless this is set.
    pub allow_demo_credentials_on_public_bind: bool,
    /// Connections waiting to be accepted: a fleet reconnects at once.
    pub listen_backlog: u32,
    pub tls: TlsSettings,
}

/// HTTPS (rustls, TLS 1.2 and 1.3). On when `cert_file` is set; plain HTTP
/// on `http.bind` stays for loopback and for a TLS-terminating proxy.
#[derive(Debug, Clone, Deserialize)]
pub struct TlsSettings {
    /// HTTPS listen address.
    pub bind: String,
    /// PEM: the server certificate, then its chain. Reloaded on SIGHUP.
    pub cert_file: String,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1). Reloaded on SIGHUP.
    pub key_file: String,
    /// PEM: CAs whose client certificates log in (as the user whose
    /// `client_cert_cn` is the certificate's subject CN). Empty: none asked.
    pub client_ca_file: String,
    /// Refuse TLS connections without a valid client certificate.
    pub require_client_cert: bool,
    /// A TLS handshake must finish within this long of the connection.
    pub handshake_timeout_ms: u64,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }
}

#[derive(Clone, Deserialize)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// One URL (single node) or several seed URLs (cluster).
    #[serde(deserialize_with = "one_or_many", default)]
    pub url: Vec<String>,
    /// Prefix of every Redis key (outside the hash tag): lets several
    /// deployments or test runs share one Redis.
    pub key_prefix: String,
    /// Multiplexed Redis connections (per node on a cluster); each carries
    /// many pipelined commands at once.
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    /// Bound on every store command: past it a request answers 503
    /// `StoreUnavailable`.
    pub command_timeout_ms: u64,
    /// Redis ACL user (empty: the URL's, else `default`).
    pub username: String,
    /// File holding the Redis password (empty: `LOYALTY_STORE_PASSWORD`,
    /// else the URL's). Read at start; the password itself is never a
    /// setting, so no dump of the settings shows it.
    pub password_file: String,
    /// Certificates for `rediss://` URLs.
    pub tls: StoreTlsSettings,
    /// Find the master through Sentinel instead of `url` (empty
    /// `master_name`: off).
    pub sentinel: SentinelSettings,
    /// Replicas that must acknowledge a write (`WAIT`) before it is
    /// answered; 0: do not wait.
    pub min_replicas_acked: u32,
    /// How long `WAIT` waits for them; past it the write's outcome is
    /// unknown to the till (503 `StoreUnavailable`).
    pub replica_ack_timeout_ms: u64,
    /// Dedicated connections for the writes that `WAIT` (it blocks the
    /// connection it is sent on); used only with `min_replicas_acked > 0`.
    pub wait_pool_size: usize,
}

/// Redis Sentinel: the addresses of the sentinels and the name of the
/// master they watch. The master and replicas are reached with the
/// store's user, password and TLS settings; the sentinels with their own
/// user and password (a sentinel's `requirepass` is its own), and the same
/// TLS files when their URLs are `rediss://`.
#[derive(Debug, Clone, Deserialize)]
pub struct SentinelSettings {
    pub master_name: String,
    #[serde(deserialize_with = "one_or_many", default)]
    pub urls: Vec<String>,
    pub username: String,
    pub password_file: String,
}

impl SentinelSettings {
    pub fn enabled(&self) -> bool {
        !self.master_name.is_empty()
    }
}

/// TLS to Redis (rustls). The server name of the URL is always checked.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreTlsSettings {
    /// PEM: the CAs trusted for Redis' certificate (empty: the system's).
    pub ca_file: String,
    /// PEM: a client certificate (and chain), for a Redis that asks for one.
    pub cert_file: String,
    /// PEM: the client certificate's private key.
    pub key_file: String,
}

/// A Redis URL may carry a password (`redis://:secret@host`).
impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("backend", &self.backend)
            .field("url", &redact::urls(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .field("sentinel.master_name", &self.sentinel.master_name)
            .field("sentinel.urls", &redact::urls(&self.sentinel.urls))
            .field("sentinel.username", &self.sentinel.username)
            .field("sentinel.password_file", &self.sentinel.password_file)
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("replica_ack_timeout_ms", &self.replica_ack_timeout_ms)
            .field("wait_pool_size", &self.wait_pool_size)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub users_file: PathBuf,
    /// How long a verified login:password is trusted without re-hashing.
    pub cache_ttl_secs: u64,
    pub cache_capacity: usize,
    /// Attempts at one login from one address within `failure_window_secs`
    /// (counted when admitted, forgiven by a success) before that login is
    /// throttled from that address for `lockout_secs`. A cached or till
    /// token credential passes whatever the count.
    pub max_failures: u32,
    /// Attempts from one address (IPv6: one /64) across all logins within
    /// the window before the address is throttled.
    pub max_failures_per_address: u32,
    pub failure_window_secs: u64,
    pub lockout_secs: u64,
    /// Argon2 verifications running at once (threads); more wait their
    /// turn, first come first served.
    pub max_concurrent_verifications: usize,
    /// Argon2 verifications waiting at most; beyond, 503 `Overloaded`
    /// with `Retry-After`.
    pub max_queued_verifications: usize,
    /// Argon2 verifications one address may have waiting or running.
    pub max_pending_per_address: usize,
    /// Addresses whose attempts are tracked; once that many are live, new
    /// addresses share one entry (no lockout is ever dropped for room).
    pub tracked_addresses: usize,
    /// Failed-login log lines per second at most (the metrics count all).
    pub failure_log_per_sec: u32,
    /// How often the users file is checked for changes (0: only SIGHUP
    /// reloads it).
    pub reload_check_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActivationSettings {
    #[serde(deserialize_with = "one_or_many")]
    pub required_fields: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EngineConfig {
    /// 0: four per core.
    pub shards: usize,
    /// Threads the shards run on; 0: one per core.
    pub threads: usize,
    pub shard_queue_capacity: usize,
    pub claim_lease_ms: i64,
    pub overload_retry_after_secs: u64,
    /// Cards whose decoded state the shards own, in all (split over the
    /// shards: `engine/owned.rs`); on Redis also the contacts and index
    /// entries of the store's lookup cache. Coherent across instances
    /// through Redis' client-side-caching invalidations. 0: none.
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
}

fn default_cache_capacity() -> usize {
    1_000_000
}

#[derive(Debug, Clone, Deserialize)]
pub struct CardSettings {
    pub number_pattern: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// A tracing filter directive, e.g. `info` or `loyalty=debug`.
    pub level: String,
    pub format: LogFormat,
    /// Log full requests and responses (credentials are never logged).
    pub requests: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    /// JSON file of demo cards and contacts loaded at start; empty: none.
    pub data_file: String,
    /// Demo data goes into the embedded store; into Redis only when asked,
    /// so that a production Redis never gets demo cards by accident.
    pub load_into_redis: bool,
}

/// A TOML string, a TOML array, or (from the environment) a comma list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

impl Settings {
    /// Defaults, then `files` in order, then the environment.
    pub fn load(files: &[PathBuf]) -> Result<Settings, config::ConfigError> {
        Self::load_with_env(files, true)
    }

    pub fn load_with_env(files: &[PathBuf], env: bool) -> Result<Settings, config::ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        for f in files {
            builder = builder.add_source(
                File::from(f.as_path())
                    .format(FileFormat::Toml)
                    .required(true),
            );
        }
        if env {
            builder = builder.add_source(
                Environment::with_prefix("LOYALTY")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        builder.build()?.try_deserialize()
    }

    /// Settings for tests: the defaults without the environment, changed by `f`.
    pub fn defaults() -> Settings {
        Self::load_with_env(&[], false).expect("config/default.toml is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s = Settings::defaults();
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.store.backend, StoreBackend::Memory);
        assert_eq!(s.log.format, LogFormat::Text);
        assert!(!s.demo.load_into_redis);
        assert_eq!(s.events.stream_max_len, 0, "no change stream unless asked");
        assert_eq!(s.store.key_prefix, "loyalty");
        assert!(s.store.pool_size >= 1 && s.store.command_timeout_ms > 0);
        assert_eq!(s.activation.required_fields, vec!["Name", "BirthDate"]);
        assert_eq!(s.bonus.accrual_percent, 500);
    }

    #[test]
    fn later_files_override_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(
            &a,
            "[http]\nbind = \"127.0.0.1:1\"\n[store]\nurl = \"redis://x:1\"\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "[bonus]\naccrual_percent = 2.5\n[http]\nbind = \"127.0.0.1:2\"\n[store]\nurl = [\"redis://a:1\", \"redis://b:2\"]\n",
        )
        .unwrap();
        let s = Settings::load_with_env(std::slice::from_ref(&a), false).unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:1");
        assert_eq!(s.store.url, vec!["redis://x:1"]);
        let s = Settings::load_with_env(&[a, b], false).unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:2");
        assert_eq!(s.bonus.accrual_percent, 250);
        assert_eq!(s.store.url, vec!["redis://a:1", "redis://b:2"]);
    }

    fn load_one(text: &str) -> Result<Settings, config::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        Settings::load_with_env(&[file], false)
    }

    #[test]
    fn a_choice_outside_its_values_names_the_key_and_the_accepted_values() {
        let e = load_one("[store]\nbackend = \"mongo\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("store.backend") && e.contains("\"memory\", \"redis\""),
            "{e}"
        );
        let e = load_one("[log]\nformat = \"JSON\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("log.format") && e.contains("\"text\", \"json\""),
            "{e}"
        );
        let s = load_one("[store]\nbackend = \"redis\"\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            (s.store.backend, s.log.format),
            (StoreBackend::Redis, LogFormat::Json)
        );
    }

    #[test]
    fn no_debug_print_shows_a_password() {
        let s = load_one(
            "[store]\nurl = [\"redis://:hunter2@a:7001\", \"redis://u:hunter2@b:7002/0\"]\n\
             [archive]\npostgres_url = \"postgres://arch:hunter2@db/l\"\n\
             [metrics]\nbearer_token_sha256 = \"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\"\n",
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("5e884898"), "{shown}");
        assert!(shown.contains("redis://:***@a:7001"), "{shown}");
        let redis = crate::store::redis::RedisSettings {
            urls: s.store.url.clone(),
            key_prefix: "p".into(),
            pool_size: 1,
            connect_timeout: std::time::Duration::from_secs(1),
            command_timeout: std::time::Duration::from_secs(1),
            cache_capacity: 0,
            cache_segments: 1,
            sentinel: None,
            min_replicas_acked: 0,
            replica_ack_timeout: std::time::Duration::ZERO,
            wait_pool_size: 1,
            access: Default::default(),
        };
        let shown = format!("{redis:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://u:***@b:7002/0"), "{shown}");
    }
}
