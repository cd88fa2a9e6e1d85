//! Builds the whole server from settings: store, engine, auth, HTTP. Used by
//! `main` and by the tests (which bind port 0).

mod accrual_life;
mod conn_limit;
mod deferred_store;
mod demo_guard;
mod hold_life;
mod http_server;

use deferred_store::DeferredStore;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::{bail, Context};
pub use http_server::ServersHandle;

use crate::api::{auth::Authenticator, router::Router, users, AppState};
use crate::archive::history_store::WithArchive;
use crate::config::{redact, BonusSettings, Settings, StoreBackend};
use crate::demo;
use crate::domain::purchase::{self, BonusRules};
use crate::domain::{CardNumberFormat, ContactField};
use crate::engine::{Engine, EngineSettings, OpsSettings, PurchaseSettings};
use crate::metrics;
use crate::net;
use crate::reload::{Reloader, UsersPolicy};
use crate::store::events::EventLog;
use crate::store::redis::sentinel::SentinelSettings;
use crate::store::redis::{access, RedisAccess, RedisSettings, RedisStore};
use crate::store::{instrumented::Instrumented, memory::MemoryStore, Store};
use crate::tls;

/// The longest idempotency retention accepted: 10 years.
const MAX_RETENTION_SECS: u64 = 10 * 366 * 86_400;

pub struct Application {
    port: u16,
    tls_port: Option<u16>,
    server: http_server::Servers,
    reloader: Arc<Reloader>,
}

impl Application {
    /// Must run inside an actix system (the shard actors start on its arbiters).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = metrics::install();
        let users = users::load(&settings.auth.users_file)?;
        demo_guard::refuse_public_demo_credentials(
            demo_guard::public_bind(&settings.http).as_deref(),
            settings.http.allow_demo_credentials_on_public_bind,
            &settings.auth.users_file.display().to_string(),
            users.values(),
        )
        .context("refusing to start")?;
        let metrics_token = &settings.metrics.bearer_token_sha256;
        if !metrics_token.is_empty()
            && crate::api::till_token::parse_hex_digest(metrics_token).is_none()
        {
            // Not ignored: /metrics would silently stay anonymous.
            bail!("metrics.bearer_token_sha256 must be 64 hex digits (loyalty issue-till-token prints a token and its digest)");
        }
        let card_format = CardNumberFormat::new(&settings.card.number_pattern)
            .with_context(|| format!("card.number_pattern {:?}", settings.card.number_pattern))?;
        let required_fields = settings
            .activation
            .required_fields
            .iter()
            .map(|f| {
                ContactField::parse(f).with_context(|| {
                    let accepted: Vec<&str> =
                        ContactField::ALL.iter().map(|f| f.wire_name()).collect();
                    format!(
                        "activation.required_fields: unknown field {f:?} (accepted: {})",
                        accepted.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let retention = settings.bonus.idempotency_retention_secs;
        if !(1..=MAX_RETENTION_SECS).contains(&retention) {
            // 0 would mean "forget at once" to one store and "keep forever"
            // to another; a huge value is no "forever" either (Redis refuses
            // expiry times past its range).
            bail!("bonus.idempotency_retention_secs must be between 1 and {MAX_RETENTION_SECS} (10 years): replays, cancels and refunds are possible only that long");
        }
        accrual_life::refuse_accruals_expiring_while_reversible(&settings.bonus)?;
        let (hold_secs, hold_max_secs) = hold_life::hold_limits(&settings.bonus)?;
        let store = open_store(&settings).await?;
        let cores = num_cpus::get().max(1);
        let engine = Arc::new(Engine::start(
            store,
            EngineSettings {
                shards: if settings.engine.shards == 0 {
                    4 * cores
                } else {
                    settings.engine.shards
                },
                threads: if settings.engine.threads == 0 {
                    cores
                } else {
                    settings.engine.threads
                },
                shard_queue_capacity: settings.engine.shard_queue_capacity,
                cache_capacity: settings.engine.cache_capacity,
                ops: OpsSettings {
                    required_fields,
                    claim_lease_ms: settings.engine.claim_lease_ms,
                    purchases: PurchaseSettings {
                        rules: bonus_rules(&settings.bonus),
                        retention_secs: settings.bonus.idempotency_retention_secs,
                        hold_secs,
                        hold_max_secs,
                    },
                },
            },
        ));
        if demo::wanted(&settings.demo, settings.store.backend) {
            let demo = demo::read(&card_format, &settings.demo.data_file)?;
            match demo.apply(&engine).await {
                Ok(()) => {}
                // The store is not there yet: the data follows when it is,
                // and the start goes on (docs/api-decisions.md).
                Err(e) if demo::is_transient(&e) => {
                    tracing::warn!(error = %e, "demo data not loaded yet: it will be once the store answers");
                    actix_rt::spawn(demo.apply_when_the_store_answers(engine.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }

        let listener = net::listen(&settings.http.bind, settings.http.listen_backlog)
            .with_context(|| format!("cannot listen on http.bind = {}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        if !demo_guard::is_loopback(&settings.http.bind) {
            tracing::warn!(bind = %settings.http.bind, "plain HTTP on a non-loopback address: credentials cross the network in clear unless a proxy terminates TLS in front (http.tls for HTTPS here)");
        }
        let tls = if settings.http.tls.enabled() {
            let (config, reloader) =
                tls::server_config(&settings.http.tls).context("http.tls: cannot set up HTTPS")?;
            let listener = net::listen(&settings.http.tls.bind, settings.http.listen_backlog)
                .with_context(|| {
                    format!(
                        "cannot listen on http.tls.bind = {}",
                        settings.http.tls.bind
                    )
                })?;
            Some((listener, config, reloader))
        } else {
            None
        };
        let tls_port = match &tls {
            Some((listener, _, _)) => Some(listener.local_addr()?.port()),
            None => None,
        };
        let workers = if settings.http.workers == 0 {
            cores
        } else {
            settings.http.workers
        };
        let http = settings.http.clone();
        let auth = Arc::new(Authenticator::new(users, settings.auth.clone()));
        let (tls, tls_reloader) = match tls {
            Some((listener, config, reloader)) => {
                let trust = reloader.trust();
                (Some((listener, config, trust)), Some(reloader))
            }
            None => (None, None),
        };
        let policy = reload_policy(&settings, auth.clone());
        let reloader = Arc::new(Reloader::new(
            auth.clone(),
            settings.auth.users_file.clone(),
            policy,
            tls_reloader,
        ));
        let check_every = (settings.auth.reload_check_ms > 0)
            .then(|| Duration::from_millis(settings.auth.reload_check_ms));
        reloader
            .spawn(check_every)
            .context("cannot listen for SIGHUP")?;
        let openapi = crate::api::openapi::document_text(Router::shared(), &settings);
        let state = web::Data::new(AppState {
            engine,
            auth,
            card_format,
            settings,
            metrics,
            openapi,
        });
        let server = http_server::serve(listener, tls, state, &http, workers)?;
        Ok(Application {
            port,
            tls_port,
            server,
            reloader,
        })
    }

    /// The HTTPS port, when `http.tls` is on.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// What SIGHUP and the users-file poller use.
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServersHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM/SIGINT: stop accepting, finish what is
    /// in flight, then return).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.run().await
    }
}

fn bonus_rules(bonus: &BonusSettings) -> BonusRules {
    let rules = bonus_rules_quietly(bonus);
    if u64::try_from(rules.date_max_age_secs).ok() < Some(bonus.purchase_date_max_age_secs) {
        tracing::warn!(
            configured = bonus.purchase_date_max_age_secs,
            used = rules.date_max_age_secs,
            "bonus.purchase_date_max_age_secs exceeds bonus.idempotency_retention_secs: the retention bounds purchase dates"
        );
    }
    rules
}

/// The rules as [`bonus_rules`] makes them, without its warning (the store
/// settings derive from them too).
fn bonus_rules_quietly(bonus: &BonusSettings) -> BonusRules {
    let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    // A purchase dated before the retention could outlive its own
    // idempotency record: the past bound never reaches beyond it.
    let max_age = bonus
        .purchase_date_max_age_secs
        .min(bonus.idempotency_retention_secs);
    BonusRules {
        accrual_bp: bonus.accrual_percent,
        activation_delay_days: bonus.activation_delay_days,
        expiry_days: bonus.expiry_days,
        max_writeoff_bp: bonus.max_writeoff_percent,
        discount_bp: bonus.discount_percent,
        date_max_age_secs: secs(max_age),
        date_max_ahead_secs: secs(bonus.purchase_date_max_ahead_secs),
    }
}

fn event_log(settings: &Settings) -> EventLog {
    EventLog {
        max_len: settings.events.stream_max_len,
    }
}

/// A PurchaseId stays bound to its card, plus the claim lease, as long as
/// the longer of two: its outcome is kept (the retention), so that a
/// cancel or refund finds the card as long as the purchase can be
/// reversed; and a replay of its confirm can pass the `Date` check
/// (`date_replay_window`: up to a day ahead, then a whole day or the
/// date's age bound), so that such a replay finds the claim, older than
/// the retention, and is refused instead of counted again (issue 26). The
/// lease: the index is claimed before the outcome is written (at most a
/// lease earlier, or the claim is retried), after the Date was checked.
fn purchase_index_ttl(settings: &Settings) -> Duration {
    let retention = Duration::from_secs(settings.bonus.idempotency_retention_secs);
    let replay = purchase::date_replay_window(&bonus_rules_quietly(&settings.bonus));
    let replay = Duration::try_from(replay).unwrap_or(Duration::MAX);
    let lease = Duration::from_millis(u64::try_from(settings.engine.claim_lease_ms).unwrap_or(0));
    retention.max(replay).saturating_add(lease)
}

async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let inner: Arc<dyn Store> = match settings.store.backend {
        StoreBackend::Memory => {
            tracing::warn!("store.backend = memory: the embedded store keeps data in memory only; nothing survives a restart");
            Arc::new(
                MemoryStore::new()
                    .with_event_log(event_log(settings))
                    .with_purchase_index_ttl(purchase_index_ttl(settings)),
            )
        }
        StoreBackend::Redis => {
            let store = &settings.store;
            let redis = RedisSettings {
                urls: store.url.clone(),
                access: RedisAccess::from_settings(store).context("store settings")?,
                key_prefix: store.key_prefix.clone(),
                pool_size: store.pool_size,
                connect_timeout: Duration::from_millis(store.connect_timeout_ms),
                command_timeout: Duration::from_millis(store.command_timeout_ms),
                cache_capacity: settings.engine.cache_capacity,
                // As many locks as shards: readers of different cards
                // rarely meet on one.
                cache_segments: 4 * num_cpus::get().max(1),
                sentinel: SentinelSettings::from_store(store).context("store.sentinel settings")?,
                min_replicas_acked: store.min_replicas_acked,
                replica_ack_timeout: Duration::from_millis(store.replica_ack_timeout_ms),
                wait_pool_size: store.wait_pool_size,
            };
            let (events, index_ttl) = (event_log(settings), purchase_index_ttl(settings));
            let connect = move || {
                let redis = redis.clone();
                async move {
                    RedisStore::connect(redis).await.map(|s| {
                        Arc::new(s.with_event_log(events).with_purchase_index_ttl(index_ttl))
                            as Arc<dyn Store>
                    })
                }
            };
            match connect().await {
                Ok(redis) => redis,
                // A wrong URL, password or certificate is the operator's to
                // fix; anything else may be an outage that ends on its own.
                Err(e) if access::is_misconfiguration(&e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "Redis refused store.url {:?} with these settings (check store.tls.ca_file, store.username, store.password_file)",
                            redact::urls(&store.url)
                        )
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to Redis: starting anyway; every request answers 503 StoreUnavailable (and /ready 503) until Redis answers");
                    let deferred = Arc::new(DeferredStore::default());
                    actix_rt::spawn(
                        deferred
                            .clone()
                            .connect_in_background(connect, Duration::from_secs(2)),
                    );
                    deferred
                }
            }
        }
    };
    // Histories page on from Redis into the archive, where one is set.
    let inner: Arc<dyn Store> = if settings.archive.postgres_url.is_empty() {
        inner
    } else {
        Arc::new(WithArchive::new(
            inner,
            settings.archive.postgres_url.clone(),
        ))
    };
    Ok(Arc::new(Instrumented(inner)))
}

/// The configured store for the command line (`loyalty export`/`import`):
/// Redis only — the embedded store lives inside a server process — and
/// connected now, or an error.
pub async fn connect_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = &settings.store;
    if store.backend != StoreBackend::Redis {
        bail!(
            "store.backend = {:?}: the command line reaches Redis only (the embedded store lives inside the server; use GET /api/admin/export and POST /api/admin/import)",
            store.backend.as_str()
        );
    }
    let redis = RedisSettings {
        urls: store.url.clone(),
        access: RedisAccess::from_settings(store).context("store settings")?,
        key_prefix: store.key_prefix.clone(),
        pool_size: store.pool_size,
        connect_timeout: Duration::from_millis(store.connect_timeout_ms),
        command_timeout: Duration::from_millis(store.command_timeout_ms),
        // A dump and a restore read and write each record once.
        cache_capacity: 0,
        cache_segments: 1,
        sentinel: SentinelSettings::from_store(store).context("store.sentinel settings")?,
        // A restore is re-run until it completes; it does not wait.
        min_replicas_acked: 0,
        replica_ack_timeout: Duration::ZERO,
        wait_pool_size: 1,
    };
    let connected = RedisStore::connect(redis)
        .await
        .with_context(|| "connecting to Redis (store.url)".to_owned())?;
    Ok(Arc::new(connected))
}

/// What a users-file reload refuses: the start's rule — no user that a
/// published demo password opens (flagged `demo = true` or not) on a public
/// bind, unless allowed. Only the users a reload adds or changes are
/// checked: the others passed already, and argon2 costs tens of ms each.
fn reload_policy(settings: &Settings, auth: Arc<Authenticator>) -> UsersPolicy {
    let public = demo_guard::public_bind(&settings.http);
    let allowed = settings.http.allow_demo_credentials_on_public_bind;
    let file = settings.auth.users_file.display().to_string();
    Box::new(move |users| {
        let in_force = auth.users();
        let new_or_changed = users
            .values()
            .filter(|u| in_force.get(&u.login).is_none_or(|old| **old != **u));
        demo_guard::refuse_public_demo_credentials(
            public.as_deref(),
            allowed,
            &file,
            new_or_changed,
        )
        .map_err(|e| e.to_string())
    })
}

/// A server running on its own thread and actix system: what the tests
/// (and any embedding program) use. Dropping it stops the server.
pub struct RunningApp {
    pub port: u16,
    pub tls_port: Option<u16>,
    pub reloader: Arc<Reloader>,
    handle: ServersHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningApp {
    pub fn spawn(settings: Settings) -> anyhow::Result<RunningApp> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("loyalty-server".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    match Application::build(settings).await {
                        Ok(app) => {
                            let _ = tx.send(Ok((
                                app.port(),
                                app.tls_port(),
                                app.reloader(),
                                app.handle(),
                            )));
                            let _ = app.run_until_stopped().await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (port, tls_port, reloader, handle) = rx
            .recv()
            .context("the server thread died while starting")??;
        Ok(RunningApp {
            port,
            tls_port,
            reloader,
            handle,
            thread: Some(thread),
        })
    }

    /// Stops the server gracefully and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // stop() sends the command at once; its future only waits for it.
        drop(self.handle.stop(true));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}
