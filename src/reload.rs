//! Revocation without downtime: the users file is read again on SIGHUP and
//! whenever its content changes (checked by polling, which also sees the
//! symlink swaps of Kubernetes config maps and editors' rename-into-place);
//! SIGHUP also reloads the TLS certificate. A file that does not load keeps
//! the users in force and is logged: a typo must never lock every till out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::api::auth::Authenticator;
use crate::api::users::{self, User, UsersError};
use crate::api::users_table::UsersChange;
use crate::metrics as m;
use crate::tls::TlsReloader;

/// A policy the whole users file must pass (e.g. no demo users on a public
/// bind), at start and on every reload; `Err` says why not.
pub type UsersPolicy = Box<dyn Fn(&HashMap<String, User>) -> Result<(), String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Users(#[from] UsersError),
    #[error("the users file {path} is refused: {reason}")]
    Refused { path: String, reason: String },
}

pub struct Reloader {
    auth: Arc<Authenticator>,
    users_file: PathBuf,
    policy: UsersPolicy,
    tls: Option<TlsReloader>,
    /// Digest of the users file content last seen by the poller, loaded or not.
    seen: Mutex<Option<[u8; 32]>>,
}

impl Reloader {
    pub fn new(
        auth: Arc<Authenticator>,
        users_file: PathBuf,
        policy: UsersPolicy,
        tls: Option<TlsReloader>,
    ) -> Reloader {
        let seen = std::fs::read(&users_file).ok().map(|b| digest(&b));
        m::users(auth.users().len());
        Reloader {
            auth,
            users_file,
            policy,
            tls,
            seen: Mutex::new(seen),
        }
    }

    /// Reads the users file and puts it in force, or changes nothing.
    pub fn reload_users(&self) -> Result<UsersChange, ReloadError> {
        let result = self.load_users();
        match &result {
            Ok(change) if change.is_empty() => {
                m::reload("users", "unchanged");
                tracing::info!(file = %self.users_file.display(), "users file reloaded: no change");
            }
            Ok(change) => {
                m::reload("users", "ok");
                m::users(self.auth.users().len());
                tracing::info!(
                    file = %self.users_file.display(),
                    added = ?change.added, removed = ?change.removed, changed = ?change.changed,
                    "users file reloaded"
                );
            }
            Err(e) => {
                m::reload("users", "error");
                tracing::error!(error = %e, "users file not reloaded; the users in force stay");
            }
        }
        result
    }

    fn load_users(&self) -> Result<UsersChange, ReloadError> {
        let users = users::load(&self.users_file)?;
        (self.policy)(&users).map_err(|reason| ReloadError::Refused {
            path: self.users_file.display().to_string(),
            reason,
        })?;
        Ok(self.auth.replace_users(users))
    }

    /// Reloads the users file if its content changed since last seen.
    pub fn check_users_file(&self) {
        let Ok(bytes) = std::fs::read(&self.users_file) else {
            // Missing for a moment during a replace; the next check sees it.
            return;
        };
        let now = digest(&bytes);
        {
            let mut seen = self.seen.lock();
            if *seen == Some(now) {
                return;
            }
            // A broken file is reported once, not every poll.
            *seen = Some(now);
        }
        let _ = self.reload_users();
    }

    /// Reloads the TLS certificate, key and client CAs (if HTTPS is on).
    pub fn reload_tls(&self) {
        let Some(tls) = &self.tls else { return };
        match tls.reload() {
            Ok(()) => {
                m::reload("tls", "ok");
                tracing::info!("TLS certificate reloaded");
            }
            Err(e) => {
                m::reload("tls", "error");
                tracing::error!(error = %e, "TLS certificate not reloaded; the one in force stays");
            }
        }
    }

    /// What SIGHUP does.
    pub fn reload_all(&self) {
        if let Ok(bytes) = std::fs::read(&self.users_file) {
            *self.seen.lock() = Some(digest(&bytes));
        }
        let _ = self.reload_users();
        self.reload_tls();
    }

    /// Starts the SIGHUP listener and the users-file poller on the current
    /// actix system; they end with it.
    pub fn spawn(self: &Arc<Self>, check_every: Option<Duration>) -> std::io::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let me = self.clone();
        actix_rt::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the users file and the TLS certificate");
                // Off the async thread: the users policy may run argon2
                // (tens of ms per new or changed user with a password).
                let me = me.clone();
                let _ = tokio::task::spawn_blocking(move || me.reload_all()).await;
            }
        });
        if let Some(every) = check_every {
            let me = self.clone();
            actix_rt::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let me = me.clone();
                    let _ = tokio::task::spawn_blocking(move || me.check_users_file()).await;
                }
            });
        }
        Ok(())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
