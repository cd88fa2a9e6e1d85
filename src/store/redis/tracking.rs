//! The invalidation channel that drives the coherence feed
//! (`store/coherence.rs`: a card's own key is reported to the shards that
//! own the cards) and the lookup cache (`cache.rs`): Redis
//! server-assisted client-side caching in broadcast mode. One RESP3
//! connection per master (one on a single node) runs
//! `CLIENT TRACKING ON BCAST PREFIX <our prefix>:card: PREFIX ...` (the key
//! spaces the cache holds); Redis then pushes the name of every such key
//! that anyone changes — this instance's
//! writes, another instance's, a script's, an expiry, an eviction — and a
//! null for `FLUSHALL`/`FLUSHDB`.
//!
//! Broadcast mode rather than the default mode because the reads go over
//! other (pooled, pipelined) connections: the default mode would need every
//! read connection redirected here and remembers keys per connection.
//!
//! The channel can be lost; what was said while it was down is lost with
//! it. So the cache is disabled and emptied *before* anything else on every
//! loss — a disconnection (Redis restart, `CLIENT KILL`, a killed master),
//! a failed heartbeat, or a change in the cluster's set of masters (a
//! failover) — and enabled again only once tracking is back on every
//! master.
//!
//! The channel can also be slow (a master that answers late). Invalidations
//! are drained as they come, whatever the heartbeat is waiting for: a slow
//! master must not hold back the pushes of the others (issue 26: while the
//! heartbeat waited on one, the cache served balances the others had
//! already invalidated). A heartbeat pings every master at once under one
//! deadline, with the topology read, and each one that completes vouches
//! for the channel for `VOUCHED_FOR` from when it started; past that
//! without another, the cache serves nothing (`cache.rs`) until one
//! completes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, ConnectionAddr, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};

use super::cache::Cache;
use super::keys::Keys;
use super::sentinel::MasterAddr;
use crate::metrics as m;

/// How often the connections are pinged, and the cluster's masters
/// compared with the ones tracked.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long a completed heartbeat vouches for the channel, from when it
/// started: every master had delivered what it sent before our ping. The
/// next one starts a `HEARTBEAT` later, so this leaves it as long again to
/// complete. It is the longest a silently dead or stalled channel, or an
/// unnoticed failover, can leave the cache serving.
const VOUCHED_FOR: Duration = Duration::from_millis(1_000);

/// The key spaces of `keys.rs` that the cache holds records of. None is a
/// prefix of another (Redis refuses overlapping prefixes).
const CACHED_SPACES: [&str; 5] = ["card", "contact", "mobile", "contact-card", "purchase"];

pub struct TrackingSettings {
    /// The URL the store connects with (a single node) or the seed URLs (a
    /// cluster): credentials and database come from the first.
    pub urls: Vec<String>,
    /// The store's user, password and TLS: this connection is no weaker.
    pub access: super::RedisAccess,
    /// Every key of ours starts with it.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Under Sentinel: the master the store's connections lead to, which
    /// the channel follows instead of `urls`.
    pub master: Option<Following>,
}

pub struct Following {
    pub master: tokio::sync::watch::Receiver<Option<MasterAddr>>,
    /// Whether the master is reached over TLS.
    pub tls: bool,
}

/// Runs until the returned handle is aborted (the store is dropped).
pub fn spawn(
    settings: TrackingSettings,
    cache: Arc<Cache>,
    cluster: Option<ClusterConnection>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        let mut reason = "started";
        loop {
            cache.flush(false, reason);
            match track(&settings, &cache, cluster.clone()).await {
                Ok(lost) => {
                    reason = lost;
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cache invalidation channel not established; the cache stays off");
                    reason = "disconnected";
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    })
}

/// Establishes tracking on every master, enables the cache, and forwards
/// invalidations until the channel is lost; answers why it was lost.
async fn track(
    settings: &TrackingSettings,
    cache: &Cache,
    mut cluster: Option<ClusterConnection>,
) -> Result<&'static str, String> {
    let nodes = match cluster.as_mut() {
        None => match &settings.master {
            None => vec![None],
            Some(f) => match f.master.borrow().clone() {
                Some(m) => vec![Some((m.host, m.port))],
                None => return Err("no master known".to_owned()),
            },
        },
        Some(c) => timeout(settings.command_timeout, masters(c))
            .await
            .map_err(|_| "CLUSTER SLOTS: no answer in time".to_owned())??
            .into_iter()
            .map(Some)
            .collect(),
    };
    let keys = Keys::new(&settings.key_prefix);
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let mut conns: Vec<MultiplexedConnection> = Vec::with_capacity(nodes.len());
    for node in &nodes {
        conns.push(connect(settings, node.as_ref(), tx.clone()).await?);
    }
    drop(tx);
    // Tracking is on everywhere and the cache was emptied before: nothing
    // it will hold can have been missed.
    let established = Instant::now();
    cache.vouch((established + VOUCHED_FOR).into_std());
    cache.enable();
    tracing::info!(
        nodes = conns.len(),
        "cache invalidation channel established: the cache serves"
    );
    let tracked: Vec<(String, u16)> = nodes.into_iter().flatten().collect();
    let following = settings.master.as_ref().map(|f| f.master.clone());
    let beat = |at: Instant| {
        heartbeat(
            settings.command_timeout,
            conns.clone(),
            cluster.clone(),
            following.clone(),
            tracked.clone(),
            at,
        )
    };
    let mut round = Box::pin(beat(established + HEARTBEAT));
    let overdue_at = tokio::time::sleep_until(established + VOUCHED_FOR);
    tokio::pin!(overdue_at);
    let mut overdue = false;
    loop {
        tokio::select! {
            push = rx.recv() => {
                if let Some(lost) = forward(cache, &keys, push) {
                    return Ok(lost);
                }
            }
            done = &mut round => {
                let started = match done {
                    Ok(started) => started,
                    Err(lost) => return Ok(lost),
                };
                // What the masters sent before their answers is queued by
                // now: apply it before vouching for the channel.
                while let Ok(push) = rx.try_recv() {
                    if let Some(lost) = forward(cache, &keys, Some(push)) {
                        return Ok(lost);
                    }
                }
                cache.size();
                cache.vouch((started + VOUCHED_FOR).into_std());
                overdue_at.as_mut().reset(started + VOUCHED_FOR);
                if overdue {
                    overdue = false;
                    m::cache_serving(true);
                    tracing::debug!("cache heartbeat completed: the cache serves again");
                }
                round = Box::pin(beat(started + HEARTBEAT));
            }
            // The cache already refuses by the clock; this only tells the
            // gauge (and whoever reads it).
            _ = &mut overdue_at, if !overdue => {
                overdue = true;
                m::cache_serving(false);
                tracing::debug!("cache heartbeat overdue: the cache serves nothing until it completes");
            }
        }
    }
}

/// One push from the channel (`None`: every connection is gone). Answers
/// `Some` when the channel is lost.
fn forward(cache: &Cache, keys: &Keys, push: Option<PushInfo>) -> Option<&'static str> {
    let push = push?;
    match push.kind {
        PushKind::Invalidate => invalidate(cache, keys, &push.data),
        PushKind::Disconnection => {
            tracing::warn!(
                "cache invalidation channel lost: the cache is emptied and off until it is back"
            );
            Some("disconnected")
        }
        _ => None,
    }
}

/// One heartbeat at `at`: a PING on every tracking connection and (on a
/// cluster) the set of masters, all at once and under one deadline, so that
/// one slow master costs one command timeout, not one each. Answers when
/// it started, or why the channel must be re-established.
async fn heartbeat(
    deadline: Duration,
    conns: Vec<MultiplexedConnection>,
    cluster: Option<ClusterConnection>,
    following: Option<tokio::sync::watch::Receiver<Option<MasterAddr>>>,
    tracked: Vec<(String, u16)>,
    at: Instant,
) -> Result<Instant, &'static str> {
    tokio::time::sleep_until(at).await;
    let started = Instant::now();
    let until = started + deadline;
    let pings = join_all(conns.into_iter().map(|mut conn| async move {
        let ping = redis::cmd("PING");
        matches!(
            timeout_at(until, ping.query_async::<()>(&mut conn)).await,
            Ok(Ok(()))
        )
    }));
    // Under Sentinel the store's connections moved to another master: the
    // invalidations that matter now come from there.
    if let Some(f) = &following {
        let now = f.borrow().clone().map(|m| (m.host, m.port));
        if now.as_ref() != tracked.first() {
            tracing::warn!(
                "the master changed (Sentinel): the cache is emptied and tracking re-established"
            );
            return Err("failover");
        }
    }
    let topology = async {
        match cluster {
            None => true,
            Some(mut c) => match timeout_at(until, masters(&mut c)).await {
                Ok(Ok(now)) if now == tracked => true,
                Ok(Ok(_)) => {
                    tracing::warn!("the cluster's masters changed: the cache is emptied and tracking re-established");
                    false
                }
                _ => false,
            },
        }
    };
    let (pings, topology) = futures_util::join!(pings, topology);
    if !pings.into_iter().all(|ok| ok) {
        return Err("disconnected");
    }
    if !topology {
        return Err("topology");
    }
    Ok(started)
}

/// Drops the keys one push names (a card's own key is reported to the
/// owners of decoded cards through the coherence feed; the others are
/// the lookup cache's); a null (`FLUSHALL`, `FLUSHDB`) drops everything.
/// Answers `Some` when the cache must be rebuilt instead.
fn invalidate(cache: &Cache, keys: &Keys, data: &[Value]) -> Option<&'static str> {
    let drop_key = |k: &str| match keys.card_of(k) {
        Some(number) => cache.coherence().card_changed(number),
        None => cache.invalidate(k),
    };
    match data.first() {
        Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
            m::cache_invalidations(keys.len() as u64);
            for key in keys {
                match key {
                    // Cache keys are UTF-8 strings: a key that is not is
                    // someone else's (a longer prefix that starts like
                    // ours) and cannot be in the cache.
                    Value::BulkString(k) => {
                        if let Ok(k) = std::str::from_utf8(k) {
                            drop_key(k)
                        }
                    }
                    Value::SimpleString(k) => drop_key(k),
                    _ => return Some("unreadable"),
                }
            }
            None
        }
        Some(Value::Nil) | None => {
            tracing::warn!("Redis was flushed (FLUSHALL/FLUSHDB): the cache is emptied");
            cache.flush(true, "flushall");
            None
        }
        Some(_) => Some("unreadable"),
    }
}

/// A RESP3 connection to one node (the configured one when `node` is
/// `None`) with tracking on in broadcast mode for our prefix.
async fn connect(
    settings: &TrackingSettings,
    node: Option<&(String, u16)>,
    tx: mpsc::UnboundedSender<PushInfo>,
) -> Result<MultiplexedConnection, String> {
    let client = match (&settings.master, node) {
        (Some(f), Some((host, port))) => settings.access.node_client(host, *port, f.tls),
        _ => {
            let url = settings.urls.first().ok_or("no store URL")?;
            settings.access.client(url)
        }
    }
    .map_err(|e| e.to_string())?;
    let info = client.get_connection_info();
    let redis = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let mut info = info.clone().set_redis_settings(redis);
    if let Some((host, port)) = node {
        let addr = match info.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        info = info.set_addr(addr);
    }
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.command_timeout))
        .set_push_sender(tx);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON").arg("BCAST");
    // Only the key spaces the cache holds (cards — whose histories and
    // records share the prefix —, contacts, index entries): not the change
    // streams, which every write appends to.
    for space in CACHED_SPACES {
        tracking
            .arg("PREFIX")
            .arg(format!("{}:{space}:", settings.key_prefix));
    }
    tracking
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// The address of every master that serves slots, sorted.
async fn masters(cluster: &mut ClusterConnection) -> Result<Vec<(String, u16)>, String> {
    let reply = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut nodes: Vec<(String, u16)> = super::slot_masters(&reply)?
        .into_iter()
        .map(|m| (m.host, m.port))
        .collect();
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}
