//! The Redis store: one node or a Redis Cluster, through the same code.
//!
//! Every mutation is one Lua script (`lua/*.lua`) that checks its
//! precondition before its first write. Connections are multiplexed
//! (`ConnectionManager` on one node, `ClusterConnection` on a cluster): a
//! command does not hold a connection while it waits, so the commands that
//! the shard actors run concurrently for different cards share one socket
//! and go out pipelined, many per round trip, instead of one round trip each
//! in turn. `store.pool_size` such connections are used round-robin, so a
//! single socket is not the bottleneck either. Both kinds reconnect by
//! themselves when Redis comes back. Every command is bounded by
//! `store.command_timeout_ms`.

pub mod access;
mod ack_cluster;
mod acks;
mod cache;
mod dump;
mod errors;
mod failover;
mod keys;
mod purchase;
mod scripts;
pub mod sentinel;
pub mod slots;
mod tracking;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt};
use parking_lot::RwLock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, ServerErrorKind, Value};
use serde::de::DeserializeOwned;

use super::codec;
use super::events::EventLog;
use super::{
    contact_of_slot, load_by_insert, BulkStore, CardLoad, CardStore, Coherence, ContactStore,
    HealthStore, RecordStore,
};
use super::{
    CardRecordWrite, Cas, Claim, DumpPage, Expiry, HistoryPage, Index, PurchaseCommit,
    PurchaseWrite, RecordRead, StoreError, Versioned,
};
use crate::domain::{Card, CardNumber, Contact, ContactCode, HistoryEntry};
use crate::metrics as m;
pub use access::RedisAccess;
use cache::{Cache, Cached};
pub use keys::Keys;
use scripts::{Lua, Scripts};
use sentinel::{MasterAddr, SentinelSettings, Sentinels};

/// Card creations in flight at once during a bulk load: enough to fill the
/// pipeline, few enough not to flood the server's input buffer.
const INSERT_CONCURRENCY: usize = 256;

/// The longest TTL `index_claim` takes (it refuses more, before writing:
/// `PEXPIRE` would fail on a time out of Redis' range). About 31,700
/// years: past the last date (9999-12-31) a `Date` check can accept, so a
/// longer configured lifetime (a huge `purchase_date_max_ahead_secs`)
/// loses nothing by the clamp, and confirms are not refused for it.
const MAX_INDEX_TTL_MS: u64 = 1_000_000_000_000_000;

#[derive(Clone)]
pub struct RedisSettings {
    /// One URL: a single node; several: seed nodes of a cluster.
    pub urls: Vec<String>,
    /// ACL user, password and TLS for every connection (`access.rs`).
    pub access: RedisAccess,
    pub key_prefix: String,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Decoded cards, contacts and index entries kept in memory (0: none).
    pub cache_capacity: usize,
    /// Locks the cache is split over.
    pub cache_segments: usize,
    /// Find (and follow) the master through Sentinel instead of `urls`.
    pub sentinel: Option<SentinelSettings>,
    /// Replicas that must acknowledge each write before it is answered
    /// (`WAIT`); 0: none.
    pub min_replicas_acked: u32,
    pub replica_ack_timeout: Duration,
    /// Connections for the writes that wait (`acks.rs`).
    pub wait_pool_size: usize,
}

/// A URL may carry the Redis password.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("urls", &crate::config::redact::urls(&self.urls))
            .field("access", &self.access)
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_segments", &self.cache_segments)
            .field("sentinel", &self.sentinel)
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("replica_ack_timeout", &self.replica_ack_timeout)
            .field("wait_pool_size", &self.wait_pool_size)
            .finish()
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }

    /// PING; on a cluster, `CLUSTER INFO` from the master of every slot
    /// range instead: ready only when each is reachable and says
    /// `cluster_state:ok`. (A plain PING reaches one random node, and
    /// redis-rs' all-masters routing silently skips masters it has no
    /// connection to; routing by slot makes it connect to each one.)
    async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Conn::Single(c) => redis::cmd("PING").query_async::<()>(c).await,
            Conn::Cluster(c) => {
                let slots = c
                    .route_command(
                        redis::cmd("CLUSTER").arg("SLOTS").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                let masters = slot_masters(&slots).map_err(not_ready)?;
                let checks = masters.into_iter().map(|m| {
                    let (slot, id) = (m.start, m.id);
                    let mut c = c.clone();
                    async move {
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                            Route::new(slot, SlotAddr::Master),
                        ));
                        // redis-rs answers from a random node when it cannot
                        // reach the slot's master: check who answered.
                        let me = c
                            .route_command(redis::cmd("CLUSTER").arg("MYID").clone(), route.clone())
                            .await?;
                        if text(&me).as_deref() != Some(id.as_str()) {
                            return Err(not_ready(format!(
                                "the master of slot {slot} is unreachable"
                            )));
                        }
                        let info = c
                            .route_command(redis::cmd("CLUSTER").arg("INFO").clone(), route)
                            .await?;
                        let info = text(&info).unwrap_or_default();
                        if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                            Ok(())
                        } else {
                            Err(not_ready(format!(
                                "the master of slot {slot} reports the cluster not ok"
                            )))
                        }
                    }
                });
                try_join_all(checks).await.map(|_| ())
            }
        }
    }
}

/// The connections in use: swapped whole when Sentinel names another
/// master (`failover.rs`).
struct Backend {
    conns: Vec<Conn>,
    /// Where they lead (Sentinel only).
    master: Option<MasterAddr>,
    /// Connections for the writes that wait for replicas.
    acks: Option<acks::AckPool>,
}

pub struct RedisStore {
    backend: Arc<RwLock<Arc<Backend>>>,
    /// Who says which node is the master (Sentinel only).
    sentinels: Option<Arc<Sentinels>>,
    /// Follows the master Sentinel names (`failover.rs`).
    follower: Option<tokio::task::JoinHandle<()>>,
    /// `WAIT n timeout` after each write (`n > 0`).
    wait_for: Option<acks::WaitFor>,
    next: AtomicUsize,
    keys: Keys,
    scripts: Scripts,
    timeout: Duration,
    /// The client may send a command again on its own (the cluster client
    /// does): see `errors::write`.
    resends: bool,
    /// The change streams' length (docs/events.md); off unless set.
    events: EventLog,
    /// How long a PurchaseId stays bound to its card (`None`: for good).
    purchase_index_ttl_ms: Option<u64>,
    cache: Option<Arc<Cache>>,
    /// The cache's invalidation channel (`tracking.rs`): stops with the store.
    tracker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(t) = &self.tracker {
            t.abort();
        }
        if let Some(t) = &self.follower {
            t.abort();
        }
    }
}

/// Connections to one node: the multiplexed ones and, when writes wait
/// for replicas, the pool they wait on.
async fn single_node(
    client: redis::Client,
    settings: &RedisSettings,
) -> Result<(Vec<Conn>, Option<acks::AckPool>), RedisError> {
    // Few, quick reconnection attempts: while Redis is away a request
    // should fail within its timeout, and the next request starts a new
    // attempt anyway.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100));
    let mut conns = Vec::with_capacity(settings.pool_size.max(1));
    for _ in 0..settings.pool_size.max(1) {
        let manager = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        conns.push(Conn::Single(manager));
    }
    let acks = if settings.min_replicas_acked > 0 {
        Some(acks::AckPool::single(&client, settings)?)
    } else {
        None
    };
    Ok((conns, acks))
}

impl Backend {
    /// The connections to the master at `addr` (Sentinel).
    async fn to_master(
        sentinels: &Sentinels,
        addr: &MasterAddr,
        settings: &RedisSettings,
    ) -> Result<Backend, RedisError> {
        let client = sentinels.master_client(addr)?;
        let (conns, acks) = single_node(client, settings).await?;
        Ok(Backend {
            conns,
            master: Some(addr.clone()),
            acks,
        })
    }
}

impl RedisStore {
    /// Connects (fails if Redis cannot be reached now; once connected, the
    /// store reconnects by itself after any outage).
    pub async fn connect(settings: RedisSettings) -> Result<RedisStore, RedisError> {
        crate::metrics::store_redis_declare();
        let pool_size = settings.pool_size.max(1);
        let mut sentinels = None;
        let backend = match (&settings.sentinel, settings.urls.as_slice()) {
            (Some(s), _) => {
                let found = Arc::new(Sentinels::new(s.clone())?);
                let addr = found.start().await?;
                let backend = Backend::to_master(&found, &addr, &settings).await?;
                sentinels = Some(found);
                backend
            }
            (None, []) => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "store.url is empty",
                )))
            }
            (None, [url]) => {
                let (conns, acks) = single_node(settings.access.client(url)?, &settings).await?;
                Backend {
                    conns,
                    master: None,
                    acks,
                }
            }
            (None, seeds) => {
                let client = settings
                    .access
                    .cluster(seeds)?
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.command_timeout)
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()?;
                let mut conns = Vec::with_capacity(pool_size);
                for _ in 0..pool_size {
                    conns.push(Conn::Cluster(client.get_async_connection().await?));
                }
                // WAIT goes to the master that took each write, on a
                // connection of its own (`ack_cluster.rs`).
                let acks = if settings.min_replicas_acked > 0 {
                    Some(acks::AckPool::cluster(
                        settings.access.cluster(seeds)?,
                        &settings,
                    )?)
                } else {
                    None
                };
                Backend {
                    conns,
                    master: None,
                    acks,
                }
            }
        };
        let conns = &backend.conns;
        let resends = matches!(conns.first(), Some(Conn::Cluster(_)));
        // The master the connections lead to, as the tracking channel
        // must follow it (Sentinel only).
        let (in_use, in_use_rx) = match &sentinels {
            Some(s) => {
                let (tx, rx) = tokio::sync::watch::channel(backend.master.clone());
                (
                    Some(tx),
                    Some(tracking::Following {
                        master: rx,
                        tls: s.tls(),
                    }),
                )
            }
            None => (None, None),
        };
        let (cache, tracker) = if settings.cache_capacity == 0 {
            (None, None)
        } else {
            let cache = Arc::new(Cache::new(
                settings.cache_capacity,
                settings.cache_segments,
                Arc::new(Coherence::new()),
            ));
            let cluster = match conns.first() {
                Some(Conn::Cluster(c)) => Some(c.clone()),
                _ => None,
            };
            let tracker = tracking::spawn(
                tracking::TrackingSettings {
                    urls: settings.urls.clone(),
                    access: settings.access.clone(),
                    key_prefix: settings.key_prefix.clone(),
                    connect_timeout: settings.connect_timeout,
                    command_timeout: settings.command_timeout,
                    master: in_use_rx,
                },
                cache.clone(),
                cluster,
            );
            (Some(cache), Some(tracker))
        };
        let wait_for = (settings.min_replicas_acked > 0).then_some(acks::WaitFor {
            replicas: settings.min_replicas_acked,
            timeout: settings.replica_ack_timeout,
        });
        let backend = Arc::new(RwLock::new(Arc::new(backend)));
        let follower = sentinels.as_ref().map(|s| {
            failover::spawn(
                s.clone(),
                backend.clone(),
                settings.clone(),
                cache.clone(),
                in_use,
            )
        });
        Ok(RedisStore {
            cache,
            tracker,
            resends,
            backend,
            sentinels,
            follower,
            wait_for,
            next: AtomicUsize::new(0),
            keys: Keys::new(&settings.key_prefix),
            scripts: Scripts::new(),
            timeout: settings.command_timeout,
            events: EventLog::OFF,
            purchase_index_ttl_ms: None,
        })
    }

    /// Appends every change to the change stream of its card's slot.
    pub fn with_event_log(mut self, events: EventLog) -> RedisStore {
        self.events = events;
        self
    }

    /// Lets a PurchaseId's index entry expire this long after its claim
    /// (docs/redis.md, "Exactly once"): the index then costs nothing once
    /// the purchase's outcome is gone.
    pub fn with_purchase_index_ttl(mut self, ttl: Duration) -> RedisStore {
        self.purchase_index_ttl_ms = Some(
            u64::try_from(ttl.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_INDEX_TTL_MS),
        );
        self
    }

    /// The keys the archive reads (the change streams).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A read through the cache: a hit answers from memory; a miss runs
    /// `read` and keeps its answer unless the key changed meanwhile.
    async fn cached<T: Clone>(
        &self,
        key: &str,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
        wrap: impl FnOnce(T) -> Cached,
        unwrap: impl FnOnce(Cached) -> Option<T>,
    ) -> Result<T, StoreError> {
        let Some(cache) = &self.cache else {
            return read.await;
        };
        let fill = match cache.lookup(key) {
            Ok(hit) => match unwrap(hit) {
                Some(value) => return Ok(value),
                // Another kind under this key cannot happen (kinds have
                // their own key spaces); read Redis rather than trust it.
                None => None,
            },
            Err(fill) => fill,
        };
        let value = read.await?;
        if let Some(fill) = fill {
            cache.fill(fill, wrap(value.clone()));
        }
        Ok(value)
    }

    /// Our own write (or write attempt) to a cached key: drop it now rather
    /// than wait for its invalidation to come round (a card's own key:
    /// tell its owner through the coherence feed).
    fn forget(&self, key: &str) {
        if let Some(cache) = &self.cache {
            match self.keys.card_of(key) {
                Some(number) => cache.coherence().card_changed(number),
                None => cache.invalidate(key),
            }
        }
    }

    /// Whether the record cache is serving (tests and diagnostics).
    pub fn cache_serving(&self) -> bool {
        self.cache.as_ref().is_some_and(|c| c.is_enabled())
    }

    fn is_cluster(&self) -> bool {
        matches!(self.backend.read().conns.first(), Some(Conn::Cluster(_)))
    }

    fn conn(&self) -> Conn {
        let backend = self.backend.read();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % backend.conns.len();
        backend.conns[i].clone()
    }

    /// A command failed in a way a failover would explain: have Sentinel
    /// asked again now rather than at its next poll.
    fn suspect_failover(&self, e: &RedisError) {
        if let Some(s) = &self.sentinels {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
            {
                s.nudge();
            }
        }
    }

    fn suspect_slowness(&self) {
        if let Some(s) = &self.sentinels {
            s.nudge();
        }
    }

    fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    /// A read command, bounded by the command timeout.
    async fn read<T: FromRedisValue>(
        &self,
        what: &'static str,
        key: &str,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        m::store_round_trip(what);
        let mut conn = self.conn();
        let run = async {
            match conn.query::<T>(&cmd).await {
                // The first command on a connection that died while Redis
                // was away fails and starts a reconnection; a read is safe
                // to send again, on the new connection.
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    conn.query::<T>(&cmd).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                self.suspect_slowness();
                Err(errors::read_timeout(what, self.timeout_ms()))
            }
            Ok(Err(e)) if is_corrupt(&e) => Err(errors::corrupt(key, e.to_string())),
            Ok(Err(e)) => {
                self.suspect_failover(&e);
                Err(errors::read(what, e))
            }
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Runs a script (EVALSHA, and EVAL if the server does not know it),
    /// bounded by the command timeout.
    async fn script(&self, lua: &Lua, keys: &[&str], args: &[&[u8]]) -> Result<Value, StoreError> {
        m::store_round_trip(lua.name);
        if let (false, Some(wait)) = (lua.read_only, self.wait_for) {
            return self.script_acked(lua, keys, args, wait).await;
        }
        let mut conn = self.conn();
        let run = async {
            let first = match conn.query::<Value>(&lua.command(false, keys, args)).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    conn.query::<Value>(&lua.command(true, keys, args)).await
                }
                other => other,
            };
            match first {
                // As `read`: the first command on a connection that died
                // while Redis was away fails; a read-only script is safe to
                // send again (in full: a restarted Redis has no scripts).
                Err(e) if lua.read_only && (e.is_io_error() || e.is_connection_dropped()) => {
                    conn.query::<Value>(&lua.command(true, keys, args)).await
                }
                other => other,
            }
        };
        let key = keys.first().copied().unwrap_or_default();
        let outcome = tokio::time::timeout(self.timeout, run).await;
        match &outcome {
            Err(_) => self.suspect_slowness(),
            Ok(Err(e)) => self.suspect_failover(e),
            Ok(Ok(_)) => {}
        }
        match outcome {
            Err(_) if lua.read_only => Err(errors::read_timeout(lua.name, self.timeout_ms())),
            Err(_) => Err(errors::write_timeout(lua.name, self.timeout_ms())),
            Ok(Err(e)) if is_corrupt(&e) => Err(errors::corrupt(key, e.to_string())),
            Ok(Err(e)) if lua.read_only => Err(errors::read(lua.name, e)),
            Ok(Err(e)) => Err(errors::write(lua.name, e, self.resends)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// A write script followed by `WAIT` (`acks.rs`): answered only once
    /// enough replicas have it; fewer within the timeout is an unknown
    /// outcome to the caller (the write is on the master, and may or may
    /// not survive a failover), which the exactly-once protocol resolves
    /// when the till retries.
    async fn script_acked(
        &self,
        lua: &Lua,
        keys: &[&str],
        args: &[&[u8]],
        wait: acks::WaitFor,
    ) -> Result<Value, StoreError> {
        let backend = self.backend.read().clone();
        let Some(pool) = &backend.acks else {
            return Err(StoreError::Unavailable(
                "no connection pool for waited writes".into(),
            ));
        };
        let key = keys.first().copied().unwrap_or_default();
        let bound = self.timeout + wait.timeout;
        match tokio::time::timeout(bound, pool.run(lua, keys, args, wait)).await {
            Err(_) => {
                self.suspect_slowness();
                Err(errors::write_timeout(
                    lua.name,
                    u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                ))
            }
            Ok(Err(e)) if is_corrupt(&e) => Err(errors::corrupt(key, e.to_string())),
            Ok(Err(e)) => {
                self.suspect_failover(&e);
                Err(errors::write(lua.name, e, self.resends))
            }
            Ok(Ok(acks::Acked::Yes(v))) => Ok(v),
            Ok(Ok(acks::Acked::Short { acked, .. })) => Err(StoreError::OutcomeUnknown(format!(
                "{}: written on the master but acknowledged by {acked} of the {} replicas required within {} ms",
                lua.name,
                wait.replicas,
                wait.timeout.as_millis()
            ))),
        }
    }

    /// A versioned record (hash fields `v`, `d`).
    async fn get_versioned<T: DeserializeOwned>(
        &self,
        what: &'static str,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("v").arg("d");
        let (v, d): (Option<String>, Option<Vec<u8>>) = self.read(what, key, cmd).await?;
        match (v, d) {
            (None, None) => Ok(None),
            (Some(v), Some(d)) => {
                let version = v
                    .parse::<u64>()
                    .map_err(|_| errors::corrupt(key, format!("version {v:?}")))?;
                let value = codec::decode(key, &d)?;
                Ok(Some(Versioned { value, version }))
            }
            _ => Err(errors::corrupt(
                key,
                "a version without data or data without a version",
            )),
        }
    }

    async fn insert_card(&self, card: &Card) -> Result<bool, StoreError> {
        let number = card.number.as_str();
        let key = self.keys.card(number);
        let stream = self.keys.events(number);
        let stored = codec::encode(card)?;
        // The event carries the card as the hash keeps it: the compact
        // encoding is the smallest form (docs/events.md, "Memory").
        let event: &[u8] = if self.events.max_len > 0 {
            &stored
        } else {
            b""
        };
        let max_len = self.events.max_len.to_string();
        let reply = self
            .script(
                &self.scripts.insert_card,
                &[&key, &stream],
                &[&stored, max_len.as_bytes(), number.as_bytes(), event],
            )
            .await;
        self.forget(&key);
        flag(&key, &reply?)
    }
}

/// One slot range's master, as `CLUSTER SLOTS` names it
/// (`[start, end, [ip, port, id], replicas...]`).
struct SlotMaster {
    start: u16,
    host: String,
    port: u16,
    id: String,
}

/// The master of every range in a `CLUSTER SLOTS` reply.
fn slot_masters(reply: &Value) -> Result<Vec<SlotMaster>, String> {
    let Value::Array(ranges) = reply else {
        return Err(format!("unexpected CLUSTER SLOTS reply {reply:?}"));
    };
    let mut masters = Vec::new();
    for range in ranges {
        let bad = || format!("unexpected CLUSTER SLOTS range {range:?}");
        let Value::Array(items) = range else {
            return Err(bad());
        };
        let start = items
            .first()
            .and_then(int)
            .and_then(|s| u16::try_from(s).ok());
        let Some(Value::Array(node)) = items.get(2) else {
            return Err(bad());
        };
        let host = node.first().and_then(text);
        let port = node
            .get(1)
            .and_then(int)
            .and_then(|p| u16::try_from(p).ok());
        let id = node.get(2).and_then(text);
        match (start, host, port, id) {
            (Some(start), Some(host), Some(port), Some(id)) => masters.push(SlotMaster {
                start,
                host,
                port,
                id,
            }),
            _ => return Err(bad()),
        }
    }
    if masters.is_empty() {
        return Err("the cluster serves no slots".into());
    }
    Ok(masters)
}

fn not_ready(why: String) -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::ClusterDown),
        "cluster not ready",
        why,
    ))
}

/// A reply that says the data is not what we wrote (a foreign value under
/// our key, or a script that found a malformed field).
fn is_corrupt(e: &RedisError) -> bool {
    e.kind() == ErrorKind::UnexpectedReturnType
        || e.kind() == ErrorKind::Parse
        || matches!(e.code(), Some("WRONGTYPE" | "CORRUPT"))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A script's 0/1 answer.
fn flag(key: &str, reply: &Value) -> Result<bool, StoreError> {
    match int(reply) {
        Some(1) => Ok(true),
        Some(0) => Ok(false),
        _ => Err(errors::corrupt(
            key,
            format!("unexpected script reply {reply:?}"),
        )),
    }
}

#[async_trait]
impl HealthStore for RedisStore {
    /// The feed the tracking channel drives (`tracking.rs`): every loss of
    /// the channel — a restart, a failover, a lost connection — and every
    /// `FLUSHALL` changes its continuity. With `engine.cache_capacity = 0`
    /// there is no channel, and nothing to vouch with.
    fn coherence(&self) -> Option<&Coherence> {
        self.cache.as_ref().map(|c| &**c.coherence())
    }

    /// The fence write and `WAIT` on a pooled connection to the master
    /// (`acks.rs`).
    async fn replicated(&self, number: &CardNumber) -> Result<(), StoreError> {
        let Some(wait) = self.wait_for else {
            return Ok(());
        };
        let backend = self.backend.read().clone();
        let Some(pool) = &backend.acks else {
            return Err(StoreError::Unavailable(
                "no connection pool for waited writes".into(),
            ));
        };
        let bound = self.timeout + wait.timeout;
        // The card's keys have its number as their hash tag.
        let slot = slots::slot_of_tag(number.as_str());
        match tokio::time::timeout(bound, pool.settle(wait, slot)).await {
            Ok(Ok(acked)) if acked >= i64::from(wait.replicas) => Ok(()),
            Ok(Ok(acked)) => Err(StoreError::Unavailable(format!(
                "the stored outcome is on the master but acknowledged by {acked} of the {} replicas required within {} ms",
                wait.replicas,
                wait.timeout.as_millis()
            ))),
            Ok(Err(e)) => {
                self.suspect_failover(&e);
                Err(errors::read("replicated", e))
            }
            Err(_) => Err(errors::read_timeout(
                "replicated",
                u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
            )),
        }
    }

    /// Pings over every pooled connection: ready only when all of them
    /// work, and a connection that died during an outage is re-established
    /// here rather than by failing a request.
    async fn ping(&self) -> Result<(), StoreError> {
        let backend = self.backend.read().clone();
        if let Some(s) = &self.sentinels {
            // Not ready while Sentinel names no reachable master, nor while
            // the connections still lead to another than the one it names.
            match s.known() {
                None => {
                    return Err(StoreError::Unavailable(
                        "Sentinel names no reachable master (failover under way?)".into(),
                    ))
                }
                Some(addr) if backend.master.as_ref() != Some(&addr) => {
                    return Err(StoreError::Unavailable(format!(
                        "the master moved to {addr}; reconnecting"
                    )))
                }
                Some(_) => {}
            }
        }
        let pings = backend.conns.iter().map(|conn| async move {
            let mut conn = conn.clone();
            let run = async {
                match conn.ping().await {
                    Err(e) if e.is_io_error() || e.is_connection_dropped() => conn.ping().await,
                    other => other,
                }
            };
            match tokio::time::timeout(self.timeout, run).await {
                Err(_) => Err(errors::read_timeout("ping", self.timeout_ms())),
                Ok(Err(e)) => Err(errors::read("ping", e)),
                Ok(Ok(_)) => Ok(()),
            }
        });
        try_join_all(pings).await?;
        Ok(())
    }
}

#[async_trait]
impl CardStore for RedisStore {
    async fn get_card(&self, number: &CardNumber) -> Result<Option<Versioned<Card>>, StoreError> {
        let key = self.keys.card(number.as_str());
        self.get_versioned("get_card", &key).await
    }

    async fn update_card(
        &self,
        card: &Card,
        expected_version: u64,
        entry: &HistoryEntry,
    ) -> Result<Cas, StoreError> {
        self.update_card_with(card, expected_version, Some(entry), &[], 0)
            .await
    }

    async fn update_card_with(
        &self,
        card: &Card,
        expected_version: u64,
        entry: Option<&HistoryEntry>,
        records: &[CardRecordWrite],
        ttl_secs: u64,
    ) -> Result<Cas, StoreError> {
        let number = card.number.as_str();
        let key = self.keys.card(number);
        let history = self.keys.history(number);
        let stream = self.keys.events(number);
        let set = self.keys.card_records(number);
        let mut keys: Vec<&str> = vec![&key, &history, &stream];
        if !records.is_empty() {
            keys.push(&set);
        }
        let version = expected_version.to_string();
        let ttl = ttl_secs.to_string();
        let card_json = codec::encode(card)?;
        // The event carries the entry as the list keeps it, the compact
        // encoding (docs/events.md, "Memory"), only when there is a stream
        // to append to.
        let entry_bytes = match entry {
            Some(e) => codec::encode(e)?,
            None => Vec::new(),
        };
        let entry_event: &[u8] = if self.events.max_len > 0 {
            &entry_bytes
        } else {
            b""
        };
        let flags: String = records
            .iter()
            .map(|r| if r.create_only { '1' } else { '0' })
            .collect();
        let modes: String = records
            .iter()
            .map(|r| match r.expiry {
                Expiry::Retention => 'R',
                Expiry::Keep => 'K',
                Expiry::In(_) => 'F',
            })
            .collect();
        let instants: Vec<String> = records
            .iter()
            .map(|r| match r.expiry {
                // PX must be positive: a copy with nothing left lives 1 ms.
                Expiry::In(ms) => ms.max(1).to_string(),
                _ => String::new(),
            })
            .collect();
        let max_len = self.events.max_len.to_string();
        let mut args: Vec<&[u8]> = vec![
            version.as_bytes(),
            &card_json,
            &entry_bytes,
            ttl.as_bytes(),
            flags.as_bytes(),
            modes.as_bytes(),
            max_len.as_bytes(),
            number.as_bytes(),
            entry_event,
        ];
        for (r, at) in records.iter().zip(&instants) {
            args.push(r.key.as_bytes());
            args.push(r.value.as_bytes());
            args.push(at.as_bytes());
        }
        self.forget(&key);
        let reply = self.script(&self.scripts.update_card, &keys, &args).await;
        // Also after: a miss that read the old version while the write was
        // under way must not install it.
        self.forget(&key);
        Ok(if flag(&key, &reply?)? {
            Cas::Applied
        } else {
            Cas::Conflict
        })
    }

    async fn card_history(
        &self,
        number: &CardNumber,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let key = self.keys.history(number.as_str());
        let card_key = self.keys.card(number.as_str());
        let before = before.map(|b| b.to_string()).unwrap_or_default();
        let limit = limit.to_string();
        let reply = self
            .script(
                &self.scripts.card_history,
                &[&key, &card_key],
                &[before.as_bytes(), limit.as_bytes()],
            )
            .await?;
        let Value::Array(items) = reply else {
            return Err(errors::corrupt(&key, format!("unexpected reply {reply:?}")));
        };
        let seq = |v: Option<&Value>, what: &str| {
            v.and_then(int)
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| errors::corrupt(&key, format!("no {what}")))
        };
        let start = seq(items.first(), "start")?;
        let archived_below = seq(items.get(1), "history base")?;
        let rest = items.get(2..).unwrap_or_default();
        let mut entries = Vec::with_capacity(rest.len());
        for (i, item) in rest.iter().enumerate().rev() {
            let Value::BulkString(bytes) = item else {
                return Err(errors::corrupt(
                    &key,
                    "a history entry that is not a string",
                ));
            };
            let entry: HistoryEntry = codec::decode(&key, bytes)?;
            entries.push((start + i as u64, entry));
        }
        Ok(HistoryPage {
            entries,
            next: (start > archived_below).then_some(start),
            archived_below,
        })
    }

    async fn commit_purchase(
        &self,
        write: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        self.commit_purchase_write(write).await
    }
}

#[async_trait]
impl RecordStore for RedisStore {
    async fn get_card_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let set = self.keys.card_records(number.as_str());
        let reply = self
            .script(&self.scripts.card_record, &[&set], &[key.as_bytes()])
            .await?;
        match reply {
            Value::Nil => Ok(None),
            other => text(&other)
                .map(Some)
                .ok_or_else(|| errors::corrupt(&set, format!("unexpected script reply {other:?}"))),
        }
    }

    async fn get_card_with_record(
        &self,
        number: &CardNumber,
        key: &str,
    ) -> Result<(Option<Versioned<Card>>, Option<RecordRead>), StoreError> {
        let card_key = self.keys.card(number.as_str());
        let set = self.keys.card_records(number.as_str());
        let reply = self
            .script(
                &self.scripts.card_with_record,
                &[&card_key, &set],
                &[key.as_bytes()],
            )
            .await?;
        let bad = || errors::corrupt(&card_key, format!("unexpected script reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        let [v, d, record, ttl] = items.as_slice() else {
            return Err(bad());
        };
        let card = match (v, d) {
            (Value::Nil, Value::Nil) => None,
            (v, Value::BulkString(d)) => {
                let v = text(v).ok_or_else(bad)?;
                let version = v
                    .parse::<u64>()
                    .map_err(|_| errors::corrupt(&card_key, format!("version {v:?}")))?;
                let value = codec::decode(&card_key, d)?;
                Some(Versioned { value, version })
            }
            _ => {
                return Err(errors::corrupt(
                    &card_key,
                    "a version without data or data without a version",
                ))
            }
        };
        let record = match record {
            Value::Nil => None,
            other => Some(RecordRead {
                value: text(other).ok_or_else(bad)?,
                ttl_ms: int(ttl).filter(|t| *t >= 0),
            }),
        };
        Ok((card, record))
    }
}

#[async_trait]
impl ContactStore for RedisStore {
    async fn get_contact(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        Ok(contact_of_slot(self.get_contact_slot(code).await?))
    }

    async fn get_contact_slot(
        &self,
        code: &ContactCode,
    ) -> Result<Versioned<Option<Contact>>, StoreError> {
        let key = self.keys.contact(code.as_str());
        self.read_contact(&key).await
    }

    async fn get_contact_cached(
        &self,
        code: &ContactCode,
    ) -> Result<Option<Versioned<Contact>>, StoreError> {
        let key = self.keys.contact(code.as_str());
        let slot = self
            .cached(
                &key,
                self.read_contact(&key),
                Cached::Contact,
                |c| match c {
                    Cached::Contact(contact) => Some(contact),
                    _ => None,
                },
            )
            .await?;
        Ok(slot.value.map(|value| Versioned {
            value,
            version: slot.version,
        }))
    }

    async fn put_contact(
        &self,
        contact: &Contact,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        let key = self.keys.contact(contact.code.as_str());
        let version = expected_version.to_string();
        self.forget(&key);
        let reply = self
            .script(
                &self.scripts.put_contact,
                &[&key],
                &[version.as_bytes(), &codec::encode(contact)?],
            )
            .await;
        self.forget(&key);
        cas(&key, &reply?)
    }

    async fn fence_contact(
        &self,
        code: &ContactCode,
        expected_version: u64,
    ) -> Result<Cas, StoreError> {
        let key = self.keys.contact(code.as_str());
        let version = expected_version.to_string();
        self.forget(&key);
        let reply = self
            .script(&self.scripts.fence_contact, &[&key], &[version.as_bytes()])
            .await;
        self.forget(&key);
        cas(&key, &reply?)
    }

    async fn index_get(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        let key = self.keys.index(index, key);
        self.read_index(&key).await
    }

    async fn index_get_cached(&self, index: Index, key: &str) -> Result<Option<Claim>, StoreError> {
        let key = self.keys.index(index, key);
        let read = async {
            let claim = self.read_index(&key).await?;
            Ok(claim.map(|c| (c.owner, c.age_ms)))
        };
        let (entry, read_at) = self
            .cached(
                &key,
                async { Ok((read.await?, Instant::now())) },
                |(entry, at)| Cached::Index(entry, at),
                |c| match c {
                    Cached::Index(entry, at) => Some((entry, at)),
                    _ => None,
                },
            )
            .await?;
        // A claim ages while it sits in the cache.
        let aged = i64::try_from(read_at.elapsed().as_millis()).unwrap_or(i64::MAX);
        Ok(entry.map(|(owner, age_ms)| Claim {
            owner,
            age_ms: age_ms.saturating_add(aged),
        }))
    }

    async fn index_claim(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        self.claim_index(index, key, expected, owner).await
    }

    async fn index_release(&self, index: Index, key: &str, owner: &str) -> Result<(), StoreError> {
        let key = self.keys.index(index, key);
        let reply = self
            .script(&self.scripts.index_release, &[&key], &[owner.as_bytes()])
            .await;
        self.forget(&key);
        reply.map(|_| ())
    }
}

#[async_trait]
impl BulkStore for RedisStore {
    /// Inserts, then a conditional update per card that existed: each
    /// card's write is atomic, the load as a whole is not.
    async fn load_cards(&self, cards: &[Card]) -> Result<Vec<CardLoad>, StoreError> {
        load_by_insert(self, cards).await
    }

    async fn insert_cards(&self, cards: &[Card]) -> Result<Vec<bool>, StoreError> {
        // Each card is its own script (cards live in different slots); run
        // concurrently, they share the pipelined connections. A window that
        // slides (rather than chunks waited for in turn) keeps the pipeline
        // full.
        let inserts: Vec<_> = cards.iter().map(|card| self.insert_card(card)).collect();
        futures_util::stream::iter(inserts)
            .buffered(INSERT_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn dump_page(&self, cursor: Option<&str>, count: usize) -> Result<DumpPage, StoreError> {
        self.dump(cursor, count).await
    }

    async fn restore_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        self.restore_one_card(card, history).await
    }

    async fn restore_record(
        &self,
        number: &CardNumber,
        key: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.restore_one_record(number, key, value, ttl_ms).await
    }
}

impl RedisStore {
    /// `Store::index_claim`, also the first step of a cluster's purchase.
    async fn claim_index(
        &self,
        index: Index,
        key: &str,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<Result<(), Option<Claim>>, StoreError> {
        let key = self.keys.index(index, key);
        let (mode, expected) = match expected {
            None => ("0", ""),
            Some(e) => ("1", e),
        };
        let ttl_ms = match index {
            Index::Purchase => self.purchase_claim_ttl(),
            Index::Mobile | Index::ContactCard => String::new(),
        };
        let reply = self
            .script(
                &self.scripts.index_claim,
                &[&key],
                &[
                    mode.as_bytes(),
                    expected.as_bytes(),
                    owner.as_bytes(),
                    ttl_ms.as_bytes(),
                ],
            )
            .await;
        self.forget(&key);
        let reply = reply?;
        let bad = || errors::corrupt(&key, format!("unexpected script reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        match items.as_slice() {
            [ok] if int(ok) == Some(1) => Ok(Ok(())),
            [no] if int(no) == Some(0) => Ok(Err(None)),
            [no, owner, since, now] if int(no) == Some(0) => {
                let owner = text(owner).ok_or_else(bad)?;
                Ok(Err(Some(claim(&key, owner, text(since), text(now))?)))
            }
            _ => Err(bad()),
        }
    }

    /// A PurchaseId claim's life in ms, as the claim scripts take it ('':
    /// for good).
    fn purchase_claim_ttl(&self) -> String {
        self.purchase_index_ttl_ms
            .map(|ms| ms.to_string())
            .unwrap_or_default()
    }

    /// A contact's hash as it is in Redis (`v` 0 and no data: none yet).
    async fn read_contact(&self, key: &str) -> Result<Versioned<Option<Contact>>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("v").arg("d");
        let (v, d): (Option<String>, Option<Vec<u8>>) = self.read("get_contact", key, cmd).await?;
        let version = match &v {
            None => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| errors::corrupt(key, format!("version {v:?}")))?,
        };
        let value = match (v, d) {
            (_, None) => None,
            (Some(_), Some(d)) => Some(codec::decode(key, &d)?),
            (None, Some(_)) => return Err(errors::corrupt(key, "data without a version")),
        };
        Ok(Versioned { value, version })
    }

    /// An index entry with its age by the server's clock.
    async fn read_index(&self, key: &str) -> Result<Option<Claim>, StoreError> {
        let reply = self.script(&self.scripts.index_get, &[key], &[]).await?;
        let bad = || errors::corrupt(key, format!("unexpected script reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        match items.as_slice() {
            [] => Ok(None),
            [owner, since, now] => Ok(Some(claim(
                key,
                text(owner).ok_or_else(bad)?,
                text(since),
                text(now),
            )?)),
            _ => Err(bad()),
        }
    }
}

/// A claim as a script read it: its `since` and the server's `now` (ms).
fn claim(
    key: &str,
    owner: String,
    since: Option<String>,
    now: Option<String>,
) -> Result<Claim, StoreError> {
    let ms = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| errors::corrupt(key, format!("claim time {v:?}")))
    };
    Ok(Claim {
        owner,
        age_ms: ms(&now)?.saturating_sub(ms(&since)?),
    })
}

/// A compare-and-set script's 1/0 answer.
fn cas(key: &str, reply: &Value) -> Result<Cas, StoreError> {
    Ok(if flag(key, reply)? {
        Cas::Applied
    } else {
        Cas::Conflict
    })
}
