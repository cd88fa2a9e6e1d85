//! The pooled connections of a Redis Cluster for writes that wait for
//! replicas (`acks.rs`): each a whole cluster connection (one connection
//! per node), so that a write, its fence and its `WAIT` go, pipelined, to
//! the master of the write's slot on a connection that nobody else's
//! command waits behind. The cluster client follows the slot to its new
//! master after a failover by itself.

use deadpool::managed::{self, Metrics, RecycleResult};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::RedisError;

use super::RedisSettings;

pub struct ClusterManager {
    client: ClusterClient,
}

impl ClusterManager {
    /// `builder` carries the store's user and TLS settings
    /// (`access.rs`); the timeouts are set here: a response may take the
    /// command's time plus `WAIT`'s.
    pub fn new(
        builder: ClusterClientBuilder,
        settings: &RedisSettings,
    ) -> Result<ClusterManager, RedisError> {
        let client = builder
            .connection_timeout(settings.connect_timeout)
            .response_timeout(settings.command_timeout + settings.replica_ack_timeout)
            // As the store's own cluster connections: a write sent again
            // after a failover is safe (`errors::write`, the scripts'
            // compare-and-set).
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()?;
        Ok(ClusterManager { client })
    }
}

impl managed::Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    /// No PING on the way out of the pool (a round trip per write): a
    /// cluster connection reconnects each node by itself, and a write on
    /// one that cannot is answered as any write whose connection failed.
    async fn recycle(&self, _: &mut ClusterConnection, _: &Metrics) -> RecycleResult<RedisError> {
        Ok(())
    }
}

pub type ClusterPool = managed::Pool<ClusterManager>;
