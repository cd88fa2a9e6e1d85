//! HTTP Basic authentication against argon2id hashes or till tokens, with
//! the protections a busy fleet needs: a cache of recent successful
//! verifications (a till must not pay an argon2 hash per request), one
//! verification per credential however many requests present it at once
//! (a restart storm), first-come-first-served argon2 (`verifier`) behind a
//! bounded queue, and throttling of failed logins by login and address
//! (`auth_throttle`). A credential known to be right — a cache hit, a till
//! token — passes before any lockout is looked at: a stranger's failures
//! must never lock out the till whose login he names (issue 28, item 1).
//! The cache key is a digest of the full
//! credentials, so only the exact login:password that verified can ever
//! hit it; each entry names the user it was verified against, so a reload
//! that changes or removes that user ends it at once.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use super::auth_throttle::{Refusal, Throttle};
use super::log_limit::LogLimit;
use super::till_token;
use super::users::User;
use super::users_table::{UsersChange, UsersTable};
use super::verifier::{Done, Interest, VerifierPool};
use crate::config::AuthSettings;
use crate::domain::{Actor, Role};
use crate::metrics as m;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    UnknownUser,
    WrongPassword,
    /// Too many recent attempts for this login from this address, or from
    /// this address, or too many of its verifications pending: retry after
    /// this many seconds.
    Throttled(u64),
    /// The argon2 queue is full: retry after this many seconds.
    Busy(u64),
}

impl AuthFailure {
    /// For the security log and the auth failure metric: an unknown login
    /// hints at credential stuffing, a wrong password at a misconfigured till.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::Throttled(_) => "throttled",
            AuthFailure::Busy(_) => "busy",
        }
    }
}

/// A successful verification: who, and when.
struct Verified {
    user: Arc<User>,
    at: Instant,
}

/// An argon2 verification under way; later requests with the same
/// credentials (against the same user) wait for its verdict.
struct InFlight {
    id: u64,
    user: Option<Arc<User>>,
    verdict: Shared<BoxFuture<'static, bool>>,
    /// Gone once every request waiting for the verdict has gone: the job
    /// is then dropped unverified, and a new request starts its own.
    interest: std::sync::Weak<super::verifier::Waiting>,
}

/// The cache and the in-flight verifications under one lock, so that a
/// request either finds the verdict, joins the verification, or starts it
/// — never starts a second one for credentials verified meanwhile.
struct Verifications {
    /// digest(login, password) → verified
    cache: LruCache<[u8; 32], Verified>,
    in_flight: HashMap<[u8; 32], InFlight>,
    next_id: u64,
}

pub struct Authenticator {
    users: RwLock<Arc<UsersTable>>,
    settings: AuthSettings,
    verifications: Arc<Mutex<Verifications>>,
    throttle: Throttle,
    failure_log: LogLimit,
    /// Random per process: digests are useless outside it.
    pepper: [u8; 32],
    pool: VerifierPool,
    /// Argon2 verifications queued so far (what coalescing saves).
    started: AtomicU64,
    /// Verified for unknown logins (and users without a password), so that
    /// they cost as much as known ones.
    dummy_hash: String,
}

enum Attempt {
    Done(Result<Actor, AuthFailure>),
    /// The user was replaced by a reload while its credentials were being
    /// verified: decide again against the new one.
    UserChanged,
}

impl Authenticator {
    pub fn new(users: HashMap<String, User>, settings: AuthSettings) -> Authenticator {
        let capacity =
            NonZeroUsize::new(settings.cache_capacity.max(1)).expect("max(1) is non-zero");
        let dummy_hash = hash_password(&format!("{:032x}", rand::random::<u128>()))
            .expect("hashing a random password cannot fail");
        let pool = VerifierPool::start(settings.max_concurrent_verifications)
            .expect("the argon2 threads start");
        Authenticator {
            users: RwLock::new(Arc::new(UsersTable::new(users))),
            verifications: Arc::new(Mutex::new(Verifications {
                cache: LruCache::new(capacity),
                in_flight: HashMap::new(),
                next_id: 0,
            })),
            throttle: Throttle::new(&settings),
            failure_log: LogLimit::new(settings.failure_log_per_sec),
            pepper: rand::random(),
            pool,
            started: AtomicU64::new(0),
            dummy_hash,
            settings,
        }
    }

    /// Whether to write this failed login's log line: `Some(n)` with the
    /// number left out since the last one written.
    pub fn log_failure(&self) -> Option<u64> {
        self.failure_log.admit()
    }

    /// Argon2 verifications actually run since start (queued ones nobody
    /// waited for any more are dropped unrun).
    pub fn verifications_run(&self) -> u64 {
        self.pool.run()
    }

    /// Argon2 verifications queued since start.
    pub fn verifications_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The users in force now.
    pub fn users(&self) -> Arc<UsersTable> {
        self.users.read().clone()
    }

    /// Puts a new set of users in force. Requests decided from now on see
    /// only them; the cached verifications of changed and removed users are
    /// dropped (they could no longer match anyway).
    pub fn replace_users(&self, users: HashMap<String, User>) -> UsersChange {
        let change = {
            let mut current = self.users.write();
            let (next, change) = current.successor(users);
            *current = Arc::new(next);
            change
        };
        if !change.changed.is_empty() || !change.removed.is_empty() {
            let gone: HashSet<&String> = change.changed.iter().chain(&change.removed).collect();
            let mut v = self.verifications.lock();
            let stale: Vec<[u8; 32]> = v
                .cache
                .iter()
                .filter(|(_, e)| gone.contains(&e.user.login))
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                v.cache.pop(&k);
            }
        }
        change
    }

    /// A till whose TLS client certificate (verified in the handshake)
    /// names a user's `client_cert_cn`.
    pub fn authenticate_client_cert(&self, cn: &str) -> Option<Actor> {
        let users = self.users();
        let user = users.by_client_cert_cn(cn)?;
        Some(Actor {
            login: user.login.clone(),
            role: user.role,
        })
    }

    /// `peer`: the client's address, which failures are counted against
    /// together with the login.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Actor, AuthFailure> {
        let Some(header) = header else {
            m::auth_failure(AuthFailure::Missing.reason());
            return Err(AuthFailure::Missing);
        };
        let Some((login, password)) = parse_basic(header) else {
            m::auth_failure(AuthFailure::Malformed.reason());
            return Err(AuthFailure::Malformed);
        };
        // Twice at most: a second reload during one request's verification
        // is not worth a third round.
        match self.attempt(&login, &password, peer).await {
            Attempt::Done(result) => result,
            Attempt::UserChanged => match self.attempt(&login, &password, peer).await {
                Attempt::Done(result) => result,
                Attempt::UserChanged => Err(if self.users().get(&login).is_some() {
                    AuthFailure::WrongPassword
                } else {
                    AuthFailure::UnknownUser
                }),
            },
        }
    }

    async fn attempt(&self, login: &str, password: &str, peer: Option<IpAddr>) -> Attempt {
        let login = login.to_owned();
        let password = password.to_owned();
        let users = self.users();
        let user = users.get(&login).cloned();
        let digest = self.digest(&login, &password);
        // Known right: passes whatever failed before, from wherever.
        if let Some(role) = self.cached(&digest, user.as_ref()) {
            m::auth_cache(true);
            return Attempt::Done(Ok(Actor { login, role }));
        }
        m::auth_cache(false);
        let verified = if till_token::looks_like_token(&password) {
            // A right token passes before any lockout too: checking one
            // costs a microsecond and guessing one is hopeless, so five
            // bogus tokens must not keep the till out.
            let right = user
                .as_ref()
                .and_then(|u| u.token_sha256.as_ref())
                .is_some_and(|stored| till_token::verify(&password, stored));
            if !right {
                if let Err(refusal) = self.throttle.admit(&login, peer, false) {
                    return Attempt::Done(Err(refused(refusal)));
                }
            }
            right
        } else {
            match self
                .verify_password(digest, user.clone(), password, &login, peer)
                .await
            {
                Ok(verdict) => verdict && user.as_ref().is_some_and(|u| u.password_hash.is_some()),
                Err(refusal) => return Attempt::Done(Err(refusal)),
            }
        };
        if verified && !self.is_current(&login, user.as_ref()) {
            return Attempt::UserChanged;
        }
        Attempt::Done(match user {
            Some(user) if verified => {
                self.throttle.succeeded(&login, peer);
                Ok(Actor {
                    login,
                    role: user.role,
                })
            }
            // Counted when it was admitted.
            _ => {
                let failure = if user.is_some() {
                    AuthFailure::WrongPassword
                } else {
                    AuthFailure::UnknownUser
                };
                m::auth_failure(failure.reason());
                Err(failure)
            }
        })
    }

    fn is_current(&self, login: &str, user: Option<&Arc<User>>) -> bool {
        match (self.users.read().get(login), user) {
            (Some(now), Some(then)) => Arc::ptr_eq(now, then),
            (None, None) => true,
            _ => false,
        }
    }

    fn digest(&self, login: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.pepper);
        h.update((login.len() as u64).to_le_bytes());
        h.update(login.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The role, if these exact credentials verified recently against the
    /// user still in force.
    fn cached(&self, digest: &[u8; 32], user: Option<&Arc<User>>) -> Option<Role> {
        let ttl = Duration::from_secs(self.settings.cache_ttl_secs);
        let mut v = self.verifications.lock();
        let entry = v.cache.get(digest)?;
        match user {
            Some(user) if Arc::ptr_eq(&entry.user, user) && entry.at.elapsed() < ttl => {
                Some(user.role)
            }
            _ => {
                v.cache.pop(digest);
                None
            }
        }
    }

    /// One argon2 verification per (credentials, user) at a time: every
    /// request presenting them meanwhile waits for the same verdict, and
    /// only the one that starts it is admitted by the throttle (a till's
    /// restart storm is one attempt, not a lockout). A verification that
    /// every waiting request has given up on is dropped before it runs.
    async fn verify_password(
        &self,
        digest: [u8; 32],
        user: Option<Arc<User>>,
        password: String,
        login: &str,
        peer: Option<IpAddr>,
    ) -> Result<bool, AuthFailure> {
        let (verdict, _interest, job) = {
            let mut v = self.verifications.lock();
            if let Some(entry) = v.cache.get(&digest) {
                if user.as_ref().is_some_and(|u| Arc::ptr_eq(u, &entry.user)) {
                    m::auth_verification("cached_meanwhile");
                    return Ok(true);
                }
            }
            let same_user = |f: &InFlight| match (&f.user, &user) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            let joined = v
                .in_flight
                .get(&digest)
                .filter(|f| same_user(f))
                .and_then(|f| Some((f.verdict.clone(), f.interest.upgrade()?)));
            match joined {
                Some((verdict, interest)) => {
                    m::auth_verification("coalesced");
                    (verdict, interest, None)
                }
                None => {
                    // Jobs whose clients all hung up do not count (they are
                    // dropped unrun), though a multiple of them does: they
                    // still hold memory until their turn.
                    let max = self.settings.max_queued_verifications.max(1);
                    if self.pool.awaited() >= max
                        || self.pool.depth() >= max.saturating_mul(ABANDONED_FACTOR)
                    {
                        m::auth_verification("refused_busy");
                        m::auth_failure(AuthFailure::Busy(1).reason());
                        return Err(AuthFailure::Busy(QUEUE_FULL_RETRY_AFTER_SECS));
                    }
                    let pending = match self.throttle.admit(login, peer, true) {
                        Ok(pending) => pending,
                        Err(refusal) => return Err(refused(refusal)),
                    };
                    m::auth_verification("started");
                    v.next_id += 1;
                    let id = v.next_id;
                    let hash = user
                        .as_ref()
                        .and_then(|u| u.password_hash.clone())
                        .unwrap_or_else(|| self.dummy_hash.clone());
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let verifications = self.verifications.clone();
                    let cached_user = user.clone();
                    let done: Done = Box::new(move |verdict| {
                        let mut v = verifications.lock();
                        if v.in_flight.get(&digest).is_some_and(|f| f.id == id) {
                            v.in_flight.remove(&digest);
                        }
                        // Dropped unverified: nobody is told anything.
                        let Some(ok) = verdict else { return };
                        if let (true, Some(user)) = (ok, cached_user) {
                            if user.password_hash.is_some() {
                                v.cache.put(
                                    digest,
                                    Verified {
                                        user,
                                        at: Instant::now(),
                                    },
                                );
                            }
                        }
                        drop(v);
                        let _ = tx.send(ok);
                    });
                    let verdict = rx.map(|r| r.unwrap_or(false)).boxed().shared();
                    let interest: Interest = self.pool.interest();
                    v.in_flight.insert(
                        digest,
                        InFlight {
                            id,
                            user,
                            verdict: verdict.clone(),
                            interest: Arc::downgrade(&interest),
                        },
                    );
                    let job = (hash, password, interest.clone(), pending, done);
                    (verdict, interest, Some(job))
                }
            }
        };
        // Queued outside the lock: the verdict callback takes it.
        if let Some((hash, password, interest, pending, done)) = job {
            self.started.fetch_add(1, Ordering::Relaxed);
            self.pool
                .submit(hash, password, &interest, Box::new(pending), done);
        }
        // `_interest` lives until the verdict arrives or this request is
        // dropped (its client hung up).
        Ok(verdict.await)
    }
}

const MAX_LOGIN_LEN: usize = 128;

/// `Retry-After` of a full argon2 queue: one verification takes tens of
/// milliseconds, so a second drains a good part of it.
const QUEUE_FULL_RETRY_AFTER_SECS: u64 = 1;

/// How many queued jobs, awaited or abandoned, per awaited one allowed.
const ABANDONED_FACTOR: usize = 16;

/// A check the throttle did not admit, as the client is told.
fn refused(refusal: Refusal) -> AuthFailure {
    let failure = match refusal {
        Refusal::Throttled(secs) => AuthFailure::Throttled(secs),
        Refusal::TooManyPending => AuthFailure::Throttled(1),
    };
    m::auth_failure(failure.reason());
    failure
}

/// `Basic base64(login:password)`; the scheme name is case-insensitive.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, data) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    // Logins key the failure map: an unbounded one would let anyone fill
    // memory without valid credentials.
    if login.is_empty() || login.len() > MAX_LOGIN_LEN {
        return None;
    }
    Some((login.to_owned(), password.to_owned()))
}

/// The login a request tried, for the security log: the part of the Basic
/// credentials before the `:` (never the password), with control characters
/// escaped so that it cannot forge log lines, and cut to a sane length.
pub fn attempted_login(header: Option<&str>) -> Option<String> {
    let (scheme, data) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let login_bytes = decoded.split(|b| *b == b':').next()?;
    if login_bytes.len() == decoded.len() || login_bytes.is_empty() {
        // No ':' at all: the whole text may be a password.
        return None;
    }
    let login = String::from_utf8_lossy(login_bytes);
    let mut shown: String = login
        .chars()
        .take(MAX_LOGIN_LEN)
        .flat_map(char::escape_default)
        .collect();
    if login.chars().count() > MAX_LOGIN_LEN {
        shown.push_str("...");
    }
    Some(shown)
}

/// PHC hash of `password` with argon2id defaults (`loyalty hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    use argon2::Argon2;
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            users_file: "unused".into(),
            cache_ttl_secs: 300,
            cache_capacity: 10,
            max_failures: 3,
            max_failures_per_address: 1000,
            failure_window_secs: 60,
            lockout_secs: 60,
            max_concurrent_verifications: 2,
            max_queued_verifications: 1000,
            max_pending_per_address: 1000,
            tracked_addresses: 100_000,
            failure_log_per_sec: 10,
            reload_check_ms: 0,
        }
    }

    fn basic(login: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
        )
    }

    fn user(login: &str, role: Role, password: &str) -> (String, User) {
        (
            login.to_owned(),
            User {
                login: login.into(),
                role,
                password_hash: Some(hash_password(password).unwrap()),
                token_sha256: None,
                client_cert_cn: None,
                demo: false,
            },
        )
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(
            HashMap::from([user("pos-1", Role::Pos, "right")]),
            settings(),
        )
    }

    #[tokio::test]
    async fn right_password_passes_and_is_cached_wrong_never_hits_the_cache() {
        let auth = authenticator();
        let ok = auth
            .authenticate(Some(&basic("pos-1", "right")), None)
            .await
            .unwrap();
        assert_eq!(ok.role, Role::Pos);
        let digest = auth.digest("pos-1", "right");
        let current = auth.users().get("pos-1").cloned();
        assert!(auth.cached(&digest, current.as_ref()).is_some());
        assert_eq!(
            auth.authenticate(Some(&basic("pos-1", "wrong")), None)
                .await,
            Err(AuthFailure::WrongPassword)
        );
        assert_eq!(
            auth.authenticate(Some(&basic("pos-1", "right ")), None)
                .await,
            Err(AuthFailure::WrongPassword)
        );
    }

    #[tokio::test]
    async fn repeated_failures_throttle_the_login_but_not_a_cached_till() {
        let auth = authenticator();
        auth.authenticate(Some(&basic("pos-1", "right")), None)
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                auth.authenticate(Some(&basic("pos-1", "x")), None).await,
                Err(AuthFailure::WrongPassword)
            );
        }
        assert!(matches!(
            auth.authenticate(Some(&basic("pos-1", "x")), None).await,
            Err(AuthFailure::Throttled(_))
        ));
        // The till that already proved its password keeps working.
        assert!(auth
            .authenticate(Some(&basic("pos-1", "right")), None)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn malformed_headers() {
        let auth = authenticator();
        for h in [
            "Bearer x",
            "Basic !!!",
            "Basic",
            "Basic bm9jb2xvbg==",
            "Basic OnB3",
        ] {
            assert_eq!(
                auth.authenticate(Some(h), None).await,
                Err(AuthFailure::Malformed),
                "{h}"
            );
        }
        assert_eq!(
            auth.authenticate(None, None).await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            auth.authenticate(Some(&basic("nobody", "right")), None)
                .await,
            Err(AuthFailure::UnknownUser)
        );
    }

    #[tokio::test]
    async fn concurrent_requests_with_one_credential_cost_one_verification() {
        let auth = Arc::new(authenticator());
        let header = basic("pos-1", "right");
        let all =
            futures_util::future::join_all((0..64).map(|_| auth.authenticate(Some(&header), None)))
                .await;
        assert!(all
            .iter()
            .all(|r| r.as_ref().is_ok_and(|a| a.role == Role::Pos)));
        assert_eq!(auth.verifications_started(), 1);
        // Wrong passwords coalesce too (one verdict for one credential).
        let wrong = basic("pos-1", "wrong");
        let all =
            futures_util::future::join_all((0..2).map(|_| auth.authenticate(Some(&wrong), None)))
                .await;
        assert!(all.iter().all(|r| *r == Err(AuthFailure::WrongPassword)));
        assert_eq!(auth.verifications_started(), 2);
    }

    #[tokio::test]
    async fn till_tokens_verify_without_argon2_and_only_as_tokens() {
        let (token, hex) = till_token::issue();
        let (other, _) = till_token::issue();
        let till = User {
            login: "till-1".into(),
            role: Role::Pos,
            password_hash: None,
            token_sha256: till_token::parse_hex_digest(&hex),
            client_cert_cn: None,
            demo: false,
        };
        let auth = Authenticator::new(HashMap::from([("till-1".into(), till)]), settings());
        let ok = auth
            .authenticate(Some(&basic("till-1", &token)), None)
            .await
            .unwrap();
        assert_eq!((ok.login.as_str(), ok.role), ("till-1", Role::Pos));
        for (login, secret, failure) in [
            ("till-1", &other, AuthFailure::WrongPassword),
            ("nobody", &token, AuthFailure::UnknownUser),
        ] {
            assert_eq!(
                auth.authenticate(Some(&basic(login, secret)), None).await,
                Err(failure)
            );
        }
        assert_eq!(auth.verifications_started(), 0);
        // A password-shaped secret for a token-only user pays the dummy
        // argon2 (same cost as an unknown login) and fails.
        assert_eq!(
            auth.authenticate(Some(&basic("till-1", "guess")), None)
                .await,
            Err(AuthFailure::WrongPassword)
        );
        assert_eq!(auth.verifications_started(), 1);
    }

    #[tokio::test]
    async fn a_reload_ends_changed_and_removed_logins_at_once_and_keeps_the_rest_cached() {
        let auth = Authenticator::new(
            HashMap::from([
                user("a", Role::Pos, "pa"),
                user("b", Role::Pos, "pb"),
                user("c", Role::Pos, "pc"),
                user("d", Role::Pos, "pd"),
            ]),
            settings(),
        );
        for (login, password) in [("a", "pa"), ("b", "pb"), ("c", "pc"), ("d", "pd")] {
            auth.authenticate(Some(&basic(login, password)), None)
                .await
                .unwrap();
        }
        assert_eq!(auth.verifications_started(), 4);
        let kept = auth.users().get("a").cloned().unwrap();
        let change = auth.replace_users(HashMap::from([
            ("a".to_owned(), (*kept).clone()),
            user("b", Role::Pos, "pb-new"),
            user("d", Role::Administrator, "pd"),
        ]));
        assert_eq!(change.changed, vec!["b", "d"]);
        assert_eq!(change.removed, vec!["c"]);
        // Unchanged: still cached, no new verification.
        auth.authenticate(Some(&basic("a", "pa")), None)
            .await
            .unwrap();
        assert_eq!(auth.verifications_started(), 4);
        for (login, password, failure) in [
            ("b", "pb", AuthFailure::WrongPassword),
            ("c", "pc", AuthFailure::UnknownUser),
        ] {
            assert_eq!(
                auth.authenticate(Some(&basic(login, password)), None).await,
                Err(failure),
                "{login}"
            );
        }
        auth.authenticate(Some(&basic("b", "pb-new")), None)
            .await
            .unwrap();
        let d = auth
            .authenticate(Some(&basic("d", "pd")), None)
            .await
            .unwrap();
        assert_eq!(d.role, Role::Administrator, "a role change applies at once");
    }

    fn peer(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn till(token_hex: &str) -> (String, User) {
        let till = User {
            login: "till-1".into(),
            role: Role::Pos,
            password_hash: None,
            token_sha256: till_token::parse_hex_digest(token_hex),
            client_cert_cn: None,
            demo: false,
        };
        ("till-1".into(), till)
    }

    /// Issue 28, item 1: five bogus tokens gave the till's real one 429.
    #[tokio::test]
    async fn bogus_tokens_never_lock_out_the_right_one() {
        let (token, hex) = till_token::issue();
        let auth = Authenticator::new(HashMap::from([till(&hex)]), settings());
        let stranger = peer("10.9.9.9");
        for _ in 0..10 {
            let (bogus, _) = till_token::issue();
            let _ = auth
                .authenticate(Some(&basic("till-1", &bogus)), stranger)
                .await;
        }
        assert!(matches!(
            auth.authenticate(Some(&basic("till-1", &till_token::issue().0)), stranger)
                .await,
            Err(AuthFailure::Throttled(_))
        ));
        // The right token passes, from the till and even from the stranger's address.
        for from in [peer("10.0.0.1"), stranger] {
            let ok = auth
                .authenticate(Some(&basic("till-1", &token)), from)
                .await;
            assert_eq!(ok.map(|a| a.login), Ok("till-1".to_owned()), "{from:?}");
        }
    }

    /// Issue 28, item 1: a password user's lockout is the guessing
    /// address's, not the user's.
    #[tokio::test]
    async fn failures_from_one_address_do_not_lock_the_login_out_elsewhere() {
        let auth = authenticator();
        for _ in 0..5 {
            let _ = auth
                .authenticate(Some(&basic("pos-1", "guess")), peer("10.9.9.9"))
                .await;
        }
        assert!(auth
            .authenticate(Some(&basic("pos-1", "right")), peer("10.0.0.1"))
            .await
            .is_ok());
    }

    /// Issue 28, item 2: attempts count when admitted, so concurrent
    /// guesses are not all verified before the first failure counts.
    #[tokio::test]
    async fn concurrent_guesses_are_counted_when_admitted() {
        let auth = authenticator();
        let from = peer("10.9.9.9");
        let headers: Vec<String> = (0..10)
            .map(|i| basic("pos-1", &format!("guess-{i}")))
            .chain([basic("pos-1", "right")])
            .collect();
        let all = futures_util::future::join_all(
            headers.iter().map(|h| auth.authenticate(Some(h), from)),
        )
        .await;
        let verified = all
            .iter()
            .filter(|r| !matches!(r, Err(AuthFailure::Throttled(_))))
            .count();
        assert_eq!(verified, 3, "{all:?}");
        assert_eq!(auth.verifications_started(), 3);
        assert!(
            matches!(all[10], Err(AuthFailure::Throttled(_))),
            "the 11th guess, right, was verified: {:?}",
            all[10]
        );
    }

    /// Issue 28, item 2: 100,800 cheap failures under other logins evicted
    /// a locked admin from the failure map.
    #[tokio::test]
    async fn a_flood_of_other_failures_never_evicts_a_lockout() {
        let auth = authenticator();
        let from = peer("10.9.9.9");
        for _ in 0..4 {
            let _ = auth.authenticate(Some(&basic("pos-1", "x")), from).await;
        }
        let (bogus, _) = till_token::issue();
        for i in 0..100_800u32 {
            let from = Some(IpAddr::from((0x0a00_0000 | i).to_be_bytes()));
            let _ = auth
                .authenticate(Some(&basic(&format!("till-{i}"), &bogus)), from)
                .await;
        }
        assert!(matches!(
            auth.authenticate(Some(&basic("pos-1", "x")), from).await,
            Err(AuthFailure::Throttled(_))
        ));
    }

    /// Issue 28, item 3: the queue is bounded, and so is an address's share.
    #[tokio::test]
    async fn a_full_queue_answers_busy_and_an_address_has_its_share() {
        let auth = Authenticator::new(
            HashMap::from([user("pos-1", Role::Pos, "right")]),
            AuthSettings {
                max_concurrent_verifications: 1,
                max_queued_verifications: 4,
                max_pending_per_address: 2,
                ..settings()
            },
        );
        // Three from one address first, then one each from six others.
        let guesses: Vec<(String, Option<IpAddr>)> = (0..9u8)
            .map(|i| {
                let from = IpAddr::from([10, 0, i.saturating_sub(2), 1]);
                (basic(&format!("u{i}"), "p"), Some(from))
            })
            .collect();
        let all = futures_util::future::join_all(
            guesses
                .iter()
                .map(|(h, from)| auth.authenticate(Some(h), *from)),
        )
        .await;
        // The third guess of 10.0.0.1 is refused for its address; the
        // queue holds 4 (plus the one a thread took) and refuses the rest.
        assert!(matches!(all[2], Err(AuthFailure::Throttled(1))), "{all:?}");
        assert!(
            all.iter().any(|r| matches!(r, Err(AuthFailure::Busy(_)))),
            "{all:?}"
        );
        assert!(
            auth.verifications_started() <= 5,
            "{}",
            auth.verifications_started()
        );
    }

    #[tokio::test]
    async fn a_verification_nobody_waits_for_is_not_run() {
        let auth = Arc::new(Authenticator::new(
            HashMap::from([user("pos-1", Role::Pos, "right")]),
            AuthSettings {
                max_concurrent_verifications: 1,
                ..settings()
            },
        ));
        // Queued and given up at once, as clients that hang up.
        for i in 0..50 {
            let header = basic(&format!("u{i}"), "guess");
            let attempt = auth.authenticate(Some(&header), None);
            let _ = futures_util::FutureExt::now_or_never(attempt);
        }
        let right = basic("pos-1", "right");
        let ok = auth.authenticate(Some(&right), peer("10.0.0.1")).await;
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(auth.verifications_started(), 51);
        // At most the one a thread took before its waiter left, and ours.
        let run = auth.verifications_run();
        assert!(run <= 2, "{run} of 51 verifications ran");
    }

    #[test]
    fn client_certificates_map_to_the_user_that_names_their_cn() {
        let (login, mut till) = user("till-7", Role::Pos, "x");
        till.client_cert_cn = Some("till-7.shop-3".into());
        let auth = Authenticator::new(HashMap::from([(login, till)]), settings());
        let actor = auth.authenticate_client_cert("till-7.shop-3").unwrap();
        assert_eq!((actor.login.as_str(), actor.role), ("till-7", Role::Pos));
        assert!(auth.authenticate_client_cert("till-7").is_none());
        auth.replace_users(HashMap::new());
        assert!(auth.authenticate_client_cert("till-7.shop-3").is_none());
    }

    #[test]
    fn the_attempted_login_is_logged_never_the_password() {
        assert_eq!(
            attempted_login(Some(&basic("till-7", "s3cret:x"))).as_deref(),
            Some("till-7")
        );
        // Newlines cannot forge log lines.
        assert_eq!(
            attempted_login(Some(&basic("a\nlogin=admin", "p"))).as_deref(),
            Some("a\\nlogin=admin")
        );
        let long = attempted_login(Some(&basic(&"x".repeat(500), "p"))).unwrap();
        assert!(long.len() < 140 && long.ends_with("..."), "{long}");
        // Without a ':' the text could be a password: nothing is shown.
        assert_eq!(
            attempted_login(Some("Basic bm9jb2xvbg==")), // "nocolon"
            None
        );
        assert_eq!(attempted_login(Some("Bearer x")), None);
        assert_eq!(attempted_login(None), None);
    }
}
