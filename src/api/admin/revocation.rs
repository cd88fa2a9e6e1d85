//! A bulk load runs for as long as its body streams in — hours, for a big
//! NDJSON file — but its credentials were checked once, at the start. A
//! user removed or changed by a reload (revocation, a rotated password, a
//! new role) must stop such a load too, and no load may run forever: the
//! source asks [`Caller::check`] before every line.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::auth::Authenticator;
use super::super::context::Ctx;
use super::super::error::ApiError;
use super::super::users::User;
use crate::domain::ErrorKey;

pub struct Caller {
    auth: Arc<Authenticator>,
    login: String,
    /// The user as it was when the load began; a reload that changes or
    /// removes it replaces the `Arc` (users_table.rs).
    user: Option<Arc<User>>,
    deadline: Option<Instant>,
}

impl Caller {
    pub fn of(ctx: &Ctx<'_>) -> Caller {
        let auth = ctx.state.auth.clone();
        let user = auth.users().get(&ctx.actor.login).cloned();
        let secs = ctx.state.settings.bulk.max_stream_secs;
        Caller {
            auth,
            login: ctx.actor.login.clone(),
            user,
            deadline: (secs > 0).then(|| Instant::now() + Duration::from_secs(secs)),
        }
    }

    /// When the load must have ended.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the load may go on: its user still in force unchanged, and
    /// its time not up.
    pub fn check(&self) -> Result<(), ApiError> {
        let users = self.auth.users();
        let current = users.get(&self.login);
        let same = match (&self.user, current) {
            (Some(then), Some(now)) => Arc::ptr_eq(then, now),
            _ => false,
        };
        if !same {
            return Err(ApiError::new(
                ErrorKey::Unauthorized,
                "the user of this load was removed or changed by a reload; the load stopped (what was loaded before stays)",
            ));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out());
        }
        Ok(())
    }
}

pub fn timed_out() -> ApiError {
    ApiError::new(
        ErrorKey::RequestTimeout,
        "the load ran past bulk.max_stream_secs and stopped (what was loaded before stays); load the rest in another request",
    )
}
