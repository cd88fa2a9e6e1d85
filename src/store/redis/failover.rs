//! Following the master Sentinel names (`sentinel.rs`): when it names
//! another node, the record cache is emptied and switched off first (what
//! it holds came with the old master's invalidations, and the new master
//! may lack writes the old one had acknowledged), then the store's
//! connections are rebuilt to the new master and swapped in whole, and
//! only then is the tracking channel told where to go — it switches the
//! cache on again once tracking is on at the new master. Requests in
//! flight on the old connections finish (or fail) there.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;

use super::cache::Cache;
use super::sentinel::{MasterAddr, Sentinels};
use super::{Backend, RedisSettings};
use crate::metrics as m;

/// Between attempts to connect to a new master that refused.
const RETRY: Duration = Duration::from_millis(200);

pub(super) fn spawn(
    sentinels: Arc<Sentinels>,
    backend: Arc<RwLock<Arc<Backend>>>,
    settings: RedisSettings,
    cache: Option<Arc<Cache>>,
    in_use: Option<watch::Sender<Option<MasterAddr>>>,
) -> tokio::task::JoinHandle<()> {
    let mut named = sentinels.watch();
    tokio::spawn(async move {
        loop {
            let target = named.borrow_and_update().clone();
            let current = backend.read().master.clone();
            match target {
                Some(addr) if current.as_ref() != Some(&addr) => {
                    if let Some(cache) = &cache {
                        cache.flush(false, "failover");
                    }
                    match Backend::to_master(&sentinels, &addr, &settings).await {
                        Ok(next) => {
                            *backend.write() = Arc::new(next);
                            m::store_master_changed();
                            tracing::warn!(master = %addr, previous = ?current.as_ref().map(ToString::to_string), "Sentinel failover: the store now writes to the new master");
                            if let Some(tx) = &in_use {
                                tx.send_replace(Some(addr));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(master = %addr, error = %e, "cannot connect to the master Sentinel names; retrying");
                            sentinels.nudge();
                            tokio::time::sleep(RETRY).await;
                            continue;
                        }
                    }
                }
                _ => {}
            }
            if named.changed().await.is_err() {
                return;
            }
        }
    })
}
