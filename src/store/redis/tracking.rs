//! The invalidation channel of the record cache (`cache.rs`): Redis
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

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    Value,
};
use tokio::sync::mpsc;

use super::cache::Cache;
use crate::metrics as m;

/// How often the connections are pinged, and the cluster's masters
/// compared with the ones tracked: the longest a silently dead channel or
/// an unnoticed failover can leave the cache serving.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// The key spaces of `keys.rs` that the cache holds records of. None is a
/// prefix of another (Redis refuses overlapping prefixes).
const CACHED_SPACES: [&str; 5] = ["card", "contact", "mobile", "contact-card", "purchase"];

pub struct TrackingSettings {
    /// The URL the store connects with (a single node) or the seed URLs (a
    /// cluster): credentials and database come from the first.
    pub urls: Vec<String>,
    /// Every key of ours starts with it.
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
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
        None => vec![None],
        Some(c) => masters(c).await?.into_iter().map(Some).collect(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<PushInfo>();
    let mut conns: Vec<MultiplexedConnection> = Vec::with_capacity(nodes.len());
    for node in &nodes {
        conns.push(connect(settings, node.as_ref(), tx.clone()).await?);
    }
    drop(tx);
    cache.enable();
    tracing::info!(
        nodes = conns.len(),
        "cache invalidation channel established: the cache serves"
    );
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            push = rx.recv() => match push {
                None => return Ok("disconnected"),
                Some(push) => match push.kind {
                    PushKind::Invalidate => {
                        if let Some(lost) = invalidate(cache, &push.data) {
                            return Ok(lost);
                        }
                    }
                    PushKind::Disconnection => {
                        tracing::warn!("cache invalidation channel lost: the cache is emptied and off until it is back");
                        return Ok("disconnected");
                    }
                    _ => {}
                },
            },
            _ = heartbeat.tick() => {
                cache.size();
                for conn in &mut conns {
                    let ping = redis::cmd("PING");
                    match tokio::time::timeout(settings.command_timeout, ping.query_async::<()>(conn)).await {
                        Ok(Ok(())) => {}
                        _ => return Ok("disconnected"),
                    }
                }
                if let Some(c) = cluster.as_mut() {
                    match masters(c).await {
                        Ok(now) if now == nodes.iter().flatten().cloned().collect::<Vec<_>>() => {}
                        Ok(_) => {
                            tracing::warn!("the cluster's masters changed: the cache is emptied and tracking re-established");
                            return Ok("topology");
                        }
                        Err(_) => return Ok("topology"),
                    }
                }
            }
        }
    }
}

/// Drops the keys one push names; a null (`FLUSHALL`, `FLUSHDB`) drops
/// everything. Answers `Some` when the cache must be rebuilt instead.
fn invalidate(cache: &Cache, data: &[Value]) -> Option<&'static str> {
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
                            cache.invalidate(k)
                        }
                    }
                    Value::SimpleString(k) => cache.invalidate(k),
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
    let url = settings.urls.first().ok_or("no store URL")?;
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(|e| e.to_string())?;
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
