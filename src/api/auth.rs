//! HTTP Basic authentication against argon2id hashes, with two protections
//! a busy fleet needs: a cache of recent successful verifications (a till
//! must not pay an argon2 hash per request) and per-login throttling of
//! failures. The cache key is a digest of the full credentials, so only the
//! exact login:password that verified can ever hit it.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::Engine as _;
use lru::LruCache;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::users::User;
use crate::config::AuthSettings;
use crate::domain::{Actor, Role};
use crate::metrics as m;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    UnknownUser,
    WrongPassword,
    /// Too many recent failures for this login: retry after this many seconds.
    Throttled(u64),
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
        }
    }
}

struct FailureState {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

pub struct Authenticator {
    users: HashMap<String, User>,
    settings: AuthSettings,
    /// digest(login, password) → (role, verified at)
    cache: Mutex<LruCache<[u8; 32], (Role, Instant)>>,
    failures: Mutex<LruCache<String, FailureState>>,
    /// Random per process: digests are useless outside it.
    pepper: [u8; 32],
    verifications: Arc<Semaphore>,
    /// Verified for unknown logins, so that they cost as much as known ones.
    dummy_hash: String,
}

impl Authenticator {
    pub fn new(users: HashMap<String, User>, settings: AuthSettings) -> Authenticator {
        let capacity =
            NonZeroUsize::new(settings.cache_capacity.max(1)).expect("max(1) is non-zero");
        let failure_capacity = NonZeroUsize::new(100_000).expect("non-zero");
        let dummy_hash = users
            .values()
            .next()
            .map(|u| u.password_hash.clone())
            .unwrap_or_default();
        Authenticator {
            users,
            cache: Mutex::new(LruCache::new(capacity)),
            failures: Mutex::new(LruCache::new(failure_capacity)),
            pepper: rand::random(),
            verifications: Arc::new(Semaphore::new(settings.max_concurrent_verifications.max(1))),
            dummy_hash,
            settings,
        }
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub async fn authenticate(&self, header: Option<&str>) -> Result<Actor, AuthFailure> {
        let Some(header) = header else {
            m::auth_failure(AuthFailure::Missing.reason());
            return Err(AuthFailure::Missing);
        };
        let Some((login, password)) = parse_basic(header) else {
            m::auth_failure(AuthFailure::Malformed.reason());
            return Err(AuthFailure::Malformed);
        };
        let digest = self.digest(&login, &password);
        if let Some(role) = self.cached(&digest) {
            m::auth_cache(true);
            return Ok(Actor { login, role });
        }
        m::auth_cache(false);
        if let Some(secs) = self.locked(&login) {
            m::auth_failure(AuthFailure::Throttled(secs).reason());
            return Err(AuthFailure::Throttled(secs));
        }
        let user = self.users.get(&login);
        let hash = user.map_or(self.dummy_hash.clone(), |u| u.password_hash.clone());
        let verified = self.verify(hash, password).await && user.is_some();
        match user {
            Some(user) if verified => {
                self.cache.lock().put(digest, (user.role, Instant::now()));
                self.failures.lock().pop(&login);
                Ok(Actor {
                    login,
                    role: user.role,
                })
            }
            _ => {
                let failure = if user.is_some() {
                    AuthFailure::WrongPassword
                } else {
                    AuthFailure::UnknownUser
                };
                m::auth_failure(failure.reason());
                self.record_failure(&login);
                Err(failure)
            }
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

    fn cached(&self, digest: &[u8; 32]) -> Option<Role> {
        let ttl = Duration::from_secs(self.settings.cache_ttl_secs);
        let mut cache = self.cache.lock();
        match cache.get(digest) {
            Some((role, at)) if at.elapsed() < ttl => Some(*role),
            Some(_) => {
                cache.pop(digest);
                None
            }
            None => None,
        }
    }

    /// Seconds left of a lockout, if the login is locked out.
    fn locked(&self, login: &str) -> Option<u64> {
        let mut failures = self.failures.lock();
        let state = failures.get_mut(login)?;
        let until = state.locked_until?;
        let now = Instant::now();
        if now < until {
            Some((until - now).as_secs().max(1))
        } else {
            failures.pop(login);
            None
        }
    }

    fn record_failure(&self, login: &str) {
        let now = Instant::now();
        let window = Duration::from_secs(self.settings.failure_window_secs);
        let mut failures = self.failures.lock();
        let state = failures.get_or_insert_mut(login.to_owned(), || FailureState {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.duration_since(state.window_start) > window {
            state.window_start = now;
            state.count = 0;
        }
        state.count += 1;
        if state.count >= self.settings.max_failures.max(1) {
            state.locked_until = Some(now + Duration::from_secs(self.settings.lockout_secs));
        }
    }

    /// Argon2 is deliberately slow and memory-hungry: run it off the async
    /// workers, a bounded number at a time.
    async fn verify(&self, hash: String, password: String) -> bool {
        let Ok(_permit) = self.verifications.clone().acquire_owned().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }
}

const MAX_LOGIN_LEN: usize = 128;

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
            failure_window_secs: 60,
            lockout_secs: 60,
            max_concurrent_verifications: 2,
        }
    }

    fn basic(login: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
        )
    }

    fn authenticator() -> Authenticator {
        let user = User {
            login: "pos-1".into(),
            role: Role::Pos,
            password_hash: hash_password("right").unwrap(),
            demo: false,
        };
        Authenticator::new(HashMap::from([(user.login.clone(), user)]), settings())
    }

    #[tokio::test]
    async fn right_password_passes_and_is_cached_wrong_never_hits_the_cache() {
        let auth = authenticator();
        let ok = auth
            .authenticate(Some(&basic("pos-1", "right")))
            .await
            .unwrap();
        assert_eq!(ok.role, Role::Pos);
        let digest = auth.digest("pos-1", "right");
        assert!(auth.cached(&digest).is_some());
        assert_eq!(
            auth.authenticate(Some(&basic("pos-1", "wrong"))).await,
            Err(AuthFailure::WrongPassword)
        );
        assert_eq!(
            auth.authenticate(Some(&basic("pos-1", "right "))).await,
            Err(AuthFailure::WrongPassword)
        );
    }

    #[tokio::test]
    async fn repeated_failures_throttle_the_login_but_not_a_cached_till() {
        let auth = authenticator();
        auth.authenticate(Some(&basic("pos-1", "right")))
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                auth.authenticate(Some(&basic("pos-1", "x"))).await,
                Err(AuthFailure::WrongPassword)
            );
        }
        assert!(matches!(
            auth.authenticate(Some(&basic("pos-1", "x"))).await,
            Err(AuthFailure::Throttled(_))
        ));
        // The till that already proved its password keeps working.
        assert!(auth
            .authenticate(Some(&basic("pos-1", "right")))
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
                auth.authenticate(Some(h)).await,
                Err(AuthFailure::Malformed),
                "{h}"
            );
        }
        assert_eq!(auth.authenticate(None).await, Err(AuthFailure::Missing));
        assert_eq!(
            auth.authenticate(Some(&basic("nobody", "right"))).await,
            Err(AuthFailure::UnknownUser)
        );
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
