//! Builds the whole server from settings: store, engine, auth, HTTP. Used by
//! `main` and by the tests (which bind port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};

use crate::api::{auth::Authenticator, dispatch, router::Router, users, AppState};
use crate::config::Settings;
use crate::demo;
use crate::domain::purchase::BonusRules;
use crate::domain::{CardNumberFormat, ContactField};
use crate::engine::{Engine, EngineSettings, OpsSettings, PurchaseSettings};
use crate::metrics;
use crate::net;
use crate::reload::Reloader;
use crate::store::redis::{RedisSettings, RedisStore};
use crate::store::{instrumented::Instrumented, memory::MemoryStore, Store};
use crate::tls;

pub struct Application {
    port: u16,
    tls_port: Option<u16>,
    server: Server,
    reloader: Arc<Reloader>,
}

impl Application {
    /// Must run inside an actix system (the shard actors start on its arbiters).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let metrics = metrics::install();
        let users = users::load(&settings.auth.users_file)?;
        refuse_public_demo_credentials(&settings, users.values().any(|u| u.demo))?;
        let card_format = CardNumberFormat::new(&settings.card.number_pattern)
            .with_context(|| format!("card.number_pattern {:?}", settings.card.number_pattern))?;
        let required_fields = settings
            .activation
            .required_fields
            .iter()
            .map(|f| {
                ContactField::parse(f)
                    .with_context(|| format!("activation.required_fields: unknown field {f:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        if settings.bonus.idempotency_retention_secs == 0 {
            // 0 would mean "forget at once" to one store and "keep forever"
            // to another; either way not what an operator means.
            bail!("bonus.idempotency_retention_secs must be at least 1 (replays, cancels and refunds are possible only that long)");
        }
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
                ops: OpsSettings {
                    required_fields,
                    claim_lease_ms: settings.engine.claim_lease_ms,
                    purchases: PurchaseSettings {
                        rules: BonusRules {
                            accrual_bp: settings.bonus.accrual_percent,
                            activation_delay_days: settings.bonus.activation_delay_days,
                            expiry_days: settings.bonus.expiry_days,
                            max_writeoff_bp: settings.bonus.max_writeoff_percent,
                            discount_bp: settings.bonus.discount_percent,
                        },
                        retention_secs: settings.bonus.idempotency_retention_secs,
                    },
                },
            },
        ));
        if !settings.demo.data_file.is_empty() {
            demo::load(&engine, &card_format, &settings.demo.data_file).await?;
        }

        let listener = net::listen(&settings.http.bind, settings.http.listen_backlog)
            .with_context(|| format!("cannot listen on http.bind = {}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        if !is_loopback(&settings.http.bind) {
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
            Some((listener, config, reloader)) => (Some((listener, config)), Some(reloader)),
            None => (None, None),
        };
        let policy_settings = settings.clone();
        let reloader = Arc::new(Reloader::new(
            auth.clone(),
            settings.auth.users_file.clone(),
            Box::new(move |users| {
                refuse_public_demo_credentials(&policy_settings, users.values().any(|u| u.demo))
                    .map_err(|e| e.to_string())
            }),
            tls_reloader,
        ));
        let check_every = (settings.auth.reload_check_ms > 0)
            .then(|| Duration::from_millis(settings.auth.reload_check_ms));
        reloader
            .spawn(check_every)
            .context("cannot listen for SIGHUP")?;
        let state = web::Data::new(AppState {
            engine,
            auth,
            router: Router::new(),
            card_format,
            settings,
            metrics,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(dispatch))
        })
        .on_connect(tls::on_connect)
        .listen(listener)?;
        if let Some((listener, config)) = tls {
            server = server.listen_rustls_0_23(listener, config)?;
        }
        let server = server
            .workers(workers)
            .shutdown_timeout(http.shutdown_timeout_secs)
            .keep_alive(Duration::from_secs(http.keep_alive_secs))
            .run();
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

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM/SIGINT: stop accepting, finish what is
    /// in flight, then return).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let inner: Arc<dyn Store> = match settings.store.backend.as_str() {
        "memory" => {
            tracing::warn!("store.backend = memory: the embedded store keeps data in memory only; nothing survives a restart");
            Arc::new(MemoryStore::new())
        }
        "redis" => {
            let store = &settings.store;
            let redis = RedisStore::connect(RedisSettings {
                urls: store.url.clone(),
                key_prefix: store.key_prefix.clone(),
                pool_size: store.pool_size,
                connect_timeout: Duration::from_millis(store.connect_timeout_ms),
                command_timeout: Duration::from_millis(store.command_timeout_ms),
            })
            .await
            .with_context(|| format!("cannot connect to Redis at {:?}", store.url))?;
            Arc::new(redis)
        }
        other => {
            bail!("store.backend = {other:?} is not supported (expected \"memory\" or \"redis\")")
        }
    };
    Ok(Arc::new(Instrumented(inner)))
}

/// Demo users have published passwords: never expose them beyond loopback
/// unless the operator says so explicitly.
fn refuse_public_demo_credentials(settings: &Settings, has_demo_users: bool) -> anyhow::Result<()> {
    let Some(public) = public_bind(&settings.http) else {
        return Ok(());
    };
    if !has_demo_users || settings.http.allow_demo_credentials_on_public_bind {
        return Ok(());
    }
    bail!(
        "refusing to start: the users file {} holds demo users (published passwords) and {public} is not a loopback address; \
         configure real users (loyalty hash-password) or set http.allow_demo_credentials_on_public_bind = true",
        settings.auth.users_file.display(),
    )
}

/// The first listener (plain or HTTPS) not on a loopback address.
fn public_bind(http: &crate::config::HttpSettings) -> Option<String> {
    if !is_loopback(&http.bind) {
        return Some(format!("http.bind = {}", http.bind));
    }
    if http.tls.enabled() && !is_loopback(&http.tls.bind) {
        return Some(format!("http.tls.bind = {}", http.tls.bind));
    }
    None
}

fn is_loopback(bind: &str) -> bool {
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    bind.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// A server running on its own thread and actix system: what the tests
/// (and any embedding program) use. Dropping it stops the server.
pub struct RunningApp {
    pub port: u16,
    pub tls_port: Option<u16>,
    pub reloader: Arc<Reloader>,
    handle: ServerHandle,
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

#[cfg(test)]
mod tests {
    use super::{is_loopback, public_bind};
    use crate::config::Settings;

    #[test]
    fn an_https_listener_counts_as_a_public_bind_too() {
        let mut http = Settings::defaults().http;
        assert_eq!(public_bind(&http), None);
        http.tls.bind = "0.0.0.0:8443".into();
        assert_eq!(public_bind(&http), None, "HTTPS is off");
        http.tls.cert_file = "cert.pem".into();
        assert_eq!(
            public_bind(&http).as_deref(),
            Some("http.tls.bind = 0.0.0.0:8443")
        );
        http.bind = "0.0.0.0:8080".into();
        assert_eq!(
            public_bind(&http).as_deref(),
            Some("http.bind = 0.0.0.0:8080")
        );
    }

    #[test]
    fn loopback_binds() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("127.1.2.3:0"));
        assert!(is_loopback("[::1]:8080"));
        assert!(is_loopback("localhost:8080"));
        assert!(!is_loopback("0.0.0.0:8080"));
        assert!(!is_loopback("[::]:8080"));
        assert!(!is_loopback("10.0.0.1:80"));
    }
}
