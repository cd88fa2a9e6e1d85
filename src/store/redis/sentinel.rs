//! Redis Sentinel: which node is the master now. The sentinels are asked
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`) at start and again whenever there
//! is reason to think the master moved — a `+switch-master` notice from
//! any sentinel, a store command that failed on the connection or was
//! refused as `READONLY` (`nudge`), and every `POLL` regardless — and the
//! address they give is believed only once that node itself says it is a
//! master (`ROLE`): right after a kill the sentinels still name the dead
//! master until they agree on a new one, and a demoted master comes back
//! as a replica.
//!
//! Why not redis-rs' `sentinel` module: its clients resolve the master
//! once, when a connection is made; a `ConnectionManager` built on one
//! reconnects to the old address for ever. Following a failover needs the
//! address to change under the store's connections (`failover.rs`), the
//! tracking channel and the archiver, so the resolution lives here and
//! every connection is made with the store's `RedisAccess` (TLS, ACL user).

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, Value};
use tokio::sync::{watch, Notify};

use super::access::RedisAccess;
use crate::config::StoreSettings;

/// How often the sentinels are asked even when nothing suggests a change:
/// a missed `+switch-master` (a sentinel restarting) costs at most this.
const POLL: Duration = Duration::from_millis(500);

/// Nudges closer together than this are one question: under load every
/// failing command nudges.
const MIN_GAP: Duration = Duration::from_millis(50);

/// A master as the sentinels name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterAddr {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for MasterAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Clone)]
pub struct SentinelSettings {
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// The sentinels' URLs; `rediss://` ones make every connection TLS.
    pub urls: Vec<String>,
    /// How the sentinels are reached (their own user and password).
    pub sentinel_access: RedisAccess,
    /// How the master is reached (the store's user, password, TLS).
    pub data_access: RedisAccess,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl SentinelSettings {
    /// `store.sentinel`, when set (`None`: no Sentinel).
    pub fn from_store(store: &StoreSettings) -> RedisResult<Option<SentinelSettings>> {
        if !store.sentinel.enabled() {
            return Ok(None);
        }
        Ok(Some(SentinelSettings {
            master_name: store.sentinel.master_name.clone(),
            urls: store.sentinel.urls.clone(),
            sentinel_access: RedisAccess::for_sentinels(store)?,
            data_access: RedisAccess::from_settings(store)?,
            connect_timeout: Duration::from_millis(store.connect_timeout_ms),
            command_timeout: Duration::from_millis(store.command_timeout_ms),
        }))
    }
}

/// `store.url`'s passwords never reach a log; neither do the sentinels'.
impl std::fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master_name", &self.master_name)
            .field("urls", &crate::config::redact::urls(&self.urls))
            .field("sentinel_access", &self.sentinel_access)
            .field("data_access", &self.data_access)
            .finish()
    }
}

fn error(what: String) -> RedisError {
    RedisError::from((ErrorKind::Io, "sentinel", what))
}

/// The sentinels and what they said last.
pub struct Sentinels {
    settings: SentinelSettings,
    clients: Vec<redis::Client>,
    tls: bool,
    /// The master as last verified; `None`: no master known (not ready).
    known: watch::Sender<Option<MasterAddr>>,
    nudged: Notify,
}

impl Sentinels {
    /// Checks the settings (every URL parses, TLS on all or none); asks
    /// nobody yet.
    pub fn new(settings: SentinelSettings) -> RedisResult<Sentinels> {
        if settings.urls.is_empty() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "store.sentinel.urls is empty",
            )));
        }
        let tls: Vec<bool> = settings
            .urls
            .iter()
            .map(|u| u.starts_with("rediss://"))
            .collect();
        if tls.iter().any(|t| *t) && !tls.iter().all(|t| *t) {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "store.sentinel.urls mixes redis:// and rediss://: the master's connection would be TLS or not depending on who answered",
            )));
        }
        let clients = settings
            .urls
            .iter()
            .map(|u| settings.sentinel_access.client(u))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(Sentinels {
            tls: tls[0],
            clients,
            settings,
            known: watch::channel(None).0,
            nudged: Notify::new(),
        })
    }

    /// Whether the master and replicas are reached over TLS (as the
    /// sentinels are).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// A client for the master at `addr`, with the store's access.
    pub fn master_client(&self, addr: &MasterAddr) -> RedisResult<redis::Client> {
        self.settings
            .data_access
            .node_client(&addr.host, addr.port, self.tls)
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout))
    }

    /// The master the sentinels name, checked with the node itself: the
    /// first sentinel that names a node that says it is a master wins.
    pub async fn ask(&self) -> RedisResult<MasterAddr> {
        let mut why = Vec::new();
        for (client, url) in self.clients.iter().zip(&self.settings.urls) {
            let url = crate::config::redact::url(url);
            match self.ask_one(client).await {
                Ok(addr) => match self.is_master(&addr).await {
                    Ok(true) => return Ok(addr),
                    Ok(false) => why.push(format!("{url} names {addr}, not a master (yet)")),
                    Err(e) if super::access::is_misconfiguration(&e) => return Err(e),
                    Err(e) => why.push(format!("{url} names {addr}, unreachable: {e}")),
                },
                Err(e) if super::access::is_misconfiguration(&e) => return Err(e),
                Err(e) => why.push(format!("{url}: {e}")),
            }
        }
        Err(error(format!(
            "no master {:?} known: {}",
            self.settings.master_name,
            why.join("; ")
        )))
    }

    async fn ask_one(&self, client: &redis::Client) -> RedisResult<MasterAddr> {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.config())
            .await?;
        let reply: Value = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.settings.master_name)
            .query_async(&mut conn)
            .await?;
        let parts: Option<Vec<String>> = match &reply {
            Value::Array(items) => items.iter().map(super::text).collect(),
            _ => None,
        };
        match parts.as_deref() {
            Some([host, port]) => match port.parse() {
                Ok(port) => Ok(MasterAddr {
                    host: host.clone(),
                    port,
                }),
                Err(_) => Err(error(format!("unreadable port {port:?}"))),
            },
            _ => Err(error(format!(
                "does not monitor a master named {:?}",
                self.settings.master_name
            ))),
        }
    }

    async fn is_master(&self, addr: &MasterAddr) -> RedisResult<bool> {
        let client = self.master_client(addr)?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.config())
            .await?;
        match redis::cmd("ROLE").query_async::<Value>(&mut conn).await {
            Ok(role) => Ok(matches!(&role, Value::Array(items)
                if items.first().and_then(super::text).as_deref() == Some("master"))),
            // ROLE is in @admin: a least-privilege ACL user may not run it.
            // The node answered; take the sentinels' word (a replica would
            // refuse our writes READONLY, which asks them again).
            Err(e) if e.code() == Some("NOPERM") => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The master as last verified (`None` while none is).
    pub fn known(&self) -> Option<MasterAddr> {
        self.known.borrow().clone()
    }

    /// Changes of [`Sentinels::known`].
    pub fn watch(&self) -> watch::Receiver<Option<MasterAddr>> {
        self.known.subscribe()
    }

    /// Something suggests the master moved: ask again now.
    pub fn nudge(&self) {
        self.nudged.notify_one();
    }

    /// Asks until a master is verified (or the settings are wrong), then
    /// keeps following it in the background for as long as `self` lives.
    pub async fn start(self: &Arc<Self>) -> RedisResult<MasterAddr> {
        let addr = self.ask().await?;
        self.known.send_replace(Some(addr.clone()));
        tracing::info!(master = %addr, name = %self.settings.master_name, "Sentinel names the master");
        tokio::spawn(follow(Arc::downgrade(self)));
        for i in 0..self.clients.len() {
            tokio::spawn(listen(Arc::downgrade(self), i));
        }
        Ok(addr)
    }
}

/// Asks the sentinels on every nudge and every `POLL`, and publishes what
/// changed, until the `Sentinels` are dropped.
async fn follow(me: Weak<Sentinels>) {
    loop {
        let Some(s) = me.upgrade() else { return };
        let nudged = {
            let n = s.nudged.notified();
            tokio::select! {
                _ = n => true,
                _ = tokio::time::sleep(POLL) => false,
            }
        };
        let now = match s.ask().await {
            Ok(addr) => Some(addr),
            Err(e) => {
                tracing::debug!(error = %e, "Sentinel: no master verified");
                None
            }
        };
        let before = s.known();
        if now != before {
            match &now {
                Some(addr) => {
                    tracing::warn!(master = %addr, previous = ?before.as_ref().map(ToString::to_string), "Sentinel: the master is known again or moved")
                }
                None => {
                    tracing::warn!(previous = ?before.as_ref().map(ToString::to_string), nudged, "Sentinel: no master known (failover under way?); not ready")
                }
            }
            s.known.send_replace(now);
        }
        drop(s);
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// Subscribes to one sentinel's `+switch-master` and nudges on each,
/// reconnecting after a loss, until the `Sentinels` are dropped.
async fn listen(me: Weak<Sentinels>, i: usize) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let client = match me.upgrade() {
            Some(s) => s.clients[i].clone(),
            None => return,
        };
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe("+switch-master").await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    let mut messages = pubsub.on_message();
                    loop {
                        // Wakes now and then without a message, to end
                        // once the store is gone.
                        match tokio::time::timeout(POLL * 10, messages.next()).await {
                            Ok(Some(_)) => match me.upgrade() {
                                Some(s) => s.nudge(),
                                None => return,
                            },
                            Ok(None) => break,
                            Err(_) if me.strong_count() == 0 => return,
                            Err(_) => {}
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Sentinel: subscribing to +switch-master failed")
                }
            },
            Err(e) => tracing::debug!(error = %e, "Sentinel: no connection for +switch-master"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(urls: &[&str]) -> SentinelSettings {
        SentinelSettings {
            master_name: "m".into(),
            urls: urls.iter().map(|u| u.to_string()).collect(),
            sentinel_access: RedisAccess::default(),
            data_access: RedisAccess::default(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn no_sentinel_or_a_mix_of_tls_and_plain_is_refused_at_start() {
        let e = Sentinels::new(settings(&[])).err().expect("refused");
        assert!(super::super::access::is_misconfiguration(&e), "{e}");
        let e = Sentinels::new(settings(&["redis://a:26379", "rediss://b:26379"]))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("mixes"), "{e}");
        let s = Sentinels::new(settings(&["rediss://a:26379", "rediss://b:26379"])).unwrap();
        assert!(s.tls() && s.known().is_none());
    }

    #[test]
    fn the_sentinels_password_is_their_own_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spw");
        std::fs::write(&path, "s3nt1nel-pw\n").unwrap();
        let mut store = crate::config::Settings::defaults().store;
        store.sentinel.master_name = "m".into();
        store.sentinel.urls = vec!["redis://:inurl-pw@a:26379".into()];
        store.sentinel.username = "watcher".into();
        store.sentinel.password_file = path.display().to_string();
        let s = SentinelSettings::from_store(&store)
            .unwrap()
            .expect("enabled");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3nt1nel") && !shown.contains("inurl-pw"),
            "{shown}"
        );
        let client = s.sentinel_access.client("redis://a:26379").unwrap();
        let info = client.get_connection_info().redis_settings();
        assert_eq!(info.password(), Some("s3nt1nel-pw"));
        assert_eq!(info.username(), Some("watcher"));
        // The master gets the store's user, not the sentinels'.
        let master = s.data_access.node_client("10.0.0.1", 6379, false).unwrap();
        assert_eq!(
            master.get_connection_info().redis_settings().username(),
            None
        );
        store.sentinel.master_name.clear();
        assert!(SentinelSettings::from_store(&store).unwrap().is_none());
    }
}
