//! Writes acknowledged by replicas (`store.min_replicas_acked`): the write
//! script and `WAIT n timeout` go out together, pipelined, on a connection
//! of their own. `WAIT` blocks the connection it is sent on (and counts the
//! writes made *on that connection*), so it cannot go over the multiplexed
//! connections that carry everyone's commands: it takes one from a
//! `deadpool-redis` pool, sized by `store.wait_pool_size`, for the length
//! of the write.
//!
//! What it promises (docs/redis.md, "Replicas and acknowledged writes"):
//! an answered write had reached `n` replicas' memory. Not that a failover
//! keeps it — Sentinel may still promote a replica that missed it.

use std::time::{Duration, Instant};

use deadpool_redis::{Pool, Runtime, Timeouts};
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, ServerErrorKind, Value};

use super::scripts::Lua;
use super::RedisSettings;
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
    pool: Pool,
    /// A key written just before each `WAIT`: `WAIT` counts the replicas
    /// that have the connection's last write, and a script that wrote
    /// nothing (a replay's create-only conflict) leaves that at an older
    /// write — or none, on a fresh connection, when `WAIT` answers at once.
    /// Writing the fence moves it to the master's current offset, which is
    /// past whatever the replay answers from.
    fence: String,
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
            .timeouts(Timeouts {
                wait: Some(settings.command_timeout),
                create: Some(settings.connect_timeout),
                recycle: Some(settings.command_timeout),
            })
            .build()
            .map_err(|e| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "store.wait_pool_size",
                    e.to_string(),
                ))
            })?;
        Ok(AckPool { pool, fence })
    }

    /// Runs `lua` then `WAIT`, pipelined on one pooled connection.
    pub async fn run(
        &self,
        lua: &Lua,
        keys: &[&str],
        args: &[&[u8]],
        wait: WaitFor,
    ) -> Result<Acked, RedisError> {
        let mut conn = self.connection().await?;
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let pipeline = |full: bool| {
            let mut p = redis::pipe();
            p.add_command(lua.command(full, keys, args));
            p.cmd("SET").arg(&self.fence).arg(1).ignore();
            p.cmd("WAIT").arg(wait.replicas).arg(timeout_ms);
            p
        };
        let (reply, acked): (Value, i64) = match pipeline(false).query_async(&mut *conn).await {
            // The script never ran: WAIT went for nothing. Send it in full.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                pipeline(true).query_async(&mut *conn).await?
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
    /// timeout): the fence, then `WAIT`.
    pub async fn settle(&self, wait: WaitFor) -> Result<i64, RedisError> {
        let mut conn = self.connection().await?;
        let timeout_ms = u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut p = redis::pipe();
        p.cmd("SET").arg(&self.fence).arg(1).ignore();
        p.cmd("WAIT").arg(wait.replicas).arg(timeout_ms);
        let (acked,): (i64,) = p.query_async(&mut *conn).await?;
        if acked < i64::from(wait.replicas) {
            m::replica_ack_short();
        }
        Ok(acked)
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, RedisError> {
        let asked = Instant::now();
        let got = self.pool.get().await;
        m::wait_pool(asked.elapsed().as_secs_f64(), self.pool.status());
        got.map_err(|e| match e {
            deadpool_redis::PoolError::Backend(e) => e,
            other => RedisError::from((ErrorKind::Io, "wait pool", other.to_string())),
        })
    }
}
