//! Writes acknowledged by replicas (`store.min_replicas_acked`): the write
//! script and `WAIT n timeout` go out together, pipelined, on a connection
//! of their own. `WAIT` blocks the connection it is sent on (and counts the
//! writes made *on that connection*), so it cannot go over the multiplexed
//! connections that carry everyone's commands: it takes one from a
//! `deadpool-redis` pool, sized by `store.wait_pool_size`, for the length
//! of the write.
//!
//! On a Redis Cluster the pool holds cluster connections
//! (`ack_cluster.rs`): the pipeline goes to the master of the write's slot,
//! and its fence is a key of that slot, so that `WAIT` there counts the
//! write's offset.
//!
//! What it promises (docs/redis.md, "Replicas and acknowledged writes"):
//! an answered write had reached `n` replicas' memory. Not that a failover
//! keeps it — Sentinel may still promote a replica that missed it.

use std::time::{Duration, Instant};

use deadpool_redis::{Pool, Runtime, Timeouts};
use redis::cluster::ClusterClientBuilder;
use redis::{
    AsyncConnectionConfig, ErrorKind, FromRedisValue, Pipeline, RedisError, ServerErrorKind, Value,
};

use super::ack_cluster::{ClusterManager, ClusterPool};
use super::scripts::Lua;
use super::{slots, RedisSettings};
use crate::metrics as m;

#[derive(Clone, Copy, Debug)]
pub struct WaitFor {
    pub replicas: u32,
    pub timeout: Duration,
}

/// What a waited write came to.
pub enum Acked {
    /// The script's reply; `n` replicas had it.
    Yes(Value),
    /// The script ran but fewer replicas than asked acknowledged it
    /// within the timeout.
    Short { acked: i64 },
}

pub struct AckPool {
    conns: Conns,
    /// The key written just before each `WAIT`: `WAIT` counts the replicas
    /// that have the connection's last write, and a script that wrote
    /// nothing (a replay's create-only conflict) leaves that at an older
    /// write — or none, on a fresh connection, when `WAIT` answers at once.
    /// Writing the fence moves it to the master's current offset, which is
    /// past whatever the replay answers from. On a cluster, one fence per
    /// slot (`{prefix}:replica-fence:{tag of the slot}`): it must be
    /// written on the master that took the write.
    fence: String,
}

enum Conns {
    Single(Pool),
    Cluster(ClusterPool),
}

/// One connection out of either pool, for the length of one write.
enum Pooled {
    Single(deadpool_redis::Connection),
    Cluster(deadpool::managed::Object<ClusterManager>),
}

impl Pooled {
    async fn query<T: FromRedisValue>(&mut self, p: &Pipeline) -> Result<T, RedisError> {
        match self {
            Pooled::Single(c) => p.query_async(&mut **c).await,
            Pooled::Cluster(c) => p.query_async(&mut **c).await,
        }
    }
}

fn timeouts(settings: &RedisSettings) -> Timeouts {
    Timeouts {
        wait: Some(settings.command_timeout),
        create: Some(settings.connect_timeout),
        recycle: Some(settings.command_timeout),
    }
}

fn pool_size_error(e: impl ToString) -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "store.wait_pool_size",
        e.to_string(),
    ))
}

impl AckPool {
    /// A pool of connections to the node `client` leads to.
    pub fn single(client: &redis::Client, settings: &RedisSettings) -> Result<AckPool, RedisError> {
        let fence = format!("{}:replica-fence", settings.key_prefix);
        // The client's connection info carries its TLS parameters and
        // credentials: the pool is no weaker than the store's connections.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            // WAIT may take its own timeout before it answers.
            .set_response_timeout(Some(
                settings.command_timeout + settings.replica_ack_timeout,
            ));
        let manager =
            deadpool_redis::Manager::new_with_config(client.get_connection_info().clone(), config)?;
        let pool = Pool::builder(manager)
            .max_size(settings.wait_pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .timeouts(timeouts(settings))
            .build()
            .map_err(pool_size_error)?;
        Ok(AckPool {
            conns: Conns::Single(pool),
            fence,
        })
    }

    /// A pool of cluster connections; `builder` has the store's user and
    /// TLS settings.
    pub fn cluster(
        builder: ClusterClientBuilder,
        settings: &RedisSettings,
    ) -> Result<AckPool, RedisError> {
        let manager = ClusterManager::new(builder, settings)?;
        let pool = ClusterPool::builder(manager)
            .max_size(settings.wait_pool_size.max(1))
            .runtime(deadpool::Runtime::Tokio1)
            .timeouts(timeouts(settings))
            .build()
            .map_err(pool_size_error)?;
        Ok(AckPool {
            conns: Conns::Cluster(pool),
            fence: format!("{}:replica-fence", settings.key_prefix),
        })
    }

    /// The fence to write on the master of `slot` (none: a single node).
    fn fence(&self, slot: Option<u16>) -> String {
        match (&self.conns, slot) {
            (Conns::Cluster(_), Some(slot)) => {
                format!("{}:{{{}}}", self.fence, slots::tag_for_slot(slot))
            }
            _ => self.fence.clone(),
        }
    }

    /// Runs `lua` then `WAIT`, pipelined on one pooled connection (on a
    /// cluster, to the master of the script's first key).
    pub async fn run(
        &self,
        lua: &Lua,
        keys: &[&str],
        args: &[&[u8]],
        wait: WaitFor,
    ) -> Result<Acked, RedisError> {
        let fence = self.fence(keys.first().map(|k| slots::slot_of_key(k)));
        let mut conn = self.connection().await?;
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let pipeline = |full: bool| {
            let mut p = redis::pipe();
            p.add_command(lua.command(full, keys, args));
            p.cmd("SET").arg(&fence).arg(1).ignore();
            p.cmd("WAIT").arg(wait.replicas).arg(timeout_ms);
            p
        };
        let (reply, acked): (Value, i64) = match conn.query(&pipeline(false)).await {
            // The script never ran: WAIT went for nothing. Send it in full.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                conn.query(&pipeline(true)).await?
            }
            other => other?,
        };
        if acked >= i64::from(wait.replicas) {
            Ok(Acked::Yes(reply))
        } else {
            m::replica_ack_short();
            Ok(Acked::Short { acked })
        }
    }

    /// How many replicas hold everything written so far (up to the
    /// timeout) on the node of `slot` (a cluster's; ignored on a single
    /// node): the fence, then `WAIT`.
    pub async fn settle(&self, wait: WaitFor, slot: u16) -> Result<i64, RedisError> {
        let fence = self.fence(Some(slot));
        let mut conn = self.connection().await?;
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut p = redis::pipe();
        p.cmd("SET").arg(&fence).arg(1).ignore();
        p.cmd("WAIT").arg(wait.replicas).arg(timeout_ms);
        let (acked,): (i64,) = conn.query(&p).await?;
        if acked < i64::from(wait.replicas) {
            m::replica_ack_short();
        }
        Ok(acked)
    }

    async fn connection(&self) -> Result<Pooled, RedisError> {
        let asked = Instant::now();
        let (got, status) = match &self.conns {
            Conns::Single(pool) => (
                pool.get().await.map(Pooled::Single).map_err(|e| match e {
                    deadpool_redis::PoolError::Backend(e) => e,
                    other => RedisError::from((ErrorKind::Io, "wait pool", other.to_string())),
                }),
                pool.status(),
            ),
            Conns::Cluster(pool) => (
                pool.get().await.map(Pooled::Cluster).map_err(|e| match e {
                    deadpool::managed::PoolError::Backend(e) => e,
                    other => RedisError::from((ErrorKind::Io, "wait pool", other.to_string())),
                }),
                pool.status(),
            ),
        };
        m::wait_pool(asked.elapsed().as_secs_f64(), status);
        got
    }
}
