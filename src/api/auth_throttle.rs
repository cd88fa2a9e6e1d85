//! Who may have a credential checked now (issue 28, items 1–3). A check is
//! counted when it is *admitted*, not when its verdict arrives: otherwise
//! a hundred concurrent guesses are all verified before the first failure
//! is counted. Lockouts are keyed by login *and* address, so a stranger who
//! fails five times locks out only himself, never the till he names; an
//! address is also limited across logins, and in the argon2 verifications
//! it may have queued at once.
//!
//! Memory is bounded per address (an address's login entries need admitted
//! attempts, which its own limit caps) and by `tracked_addresses`; nothing
//! live is ever evicted to make room: once the table is full of live
//! entries, new addresses are not tracked until entries expire. They are
//! not locked out either: one entry shared by all of them would let a
//! stranger with enough addresses lock every later client out, the admin
//! included (found by review); untracked attempts stay bounded by the
//! argon2 queue (`auth.max_queued_verifications`, 503 beyond it).
//! IPv6 addresses count per /64, which is what one host can cheaply own.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::AuthSettings;

/// Why an attempt is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The login (from this address) or the address is locked out: retry
    /// after this many seconds.
    Throttled(u64),
    /// The address already has its share of argon2 verifications queued.
    TooManyPending,
}

#[derive(Debug, Clone)]
struct Limits {
    per_login: u32,
    per_address: u32,
    window: Duration,
    lockout: Duration,
    pending_per_address: usize,
    tracked_addresses: usize,
}

/// Attempts within a window, and a lockout once they ran out.
#[derive(Debug)]
struct Counter {
    window_start: Instant,
    attempts: u32,
    locked_until: Option<Instant>,
}

impl Counter {
    fn new(now: Instant) -> Counter {
        Counter {
            window_start: now,
            attempts: 0,
            locked_until: None,
        }
    }

    /// Over: the lockout has ended, or the window passed without one.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        match self.locked_until {
            Some(until) => now >= until,
            None => now.duration_since(self.window_start) > window,
        }
    }

    fn refresh(&mut self, now: Instant, window: Duration) {
        if self.expired(now, window) {
            *self = Counter::new(now);
        }
    }

    fn locked(&self, now: Instant) -> Option<u64> {
        let until = self.locked_until?;
        (now < until).then(|| (until - now).as_secs().max(1))
    }

    /// Takes one attempt, or locks (and refuses) once `limit` are used.
    fn take(&mut self, now: Instant, limit: u32, lockout: Duration) -> Result<(), u64> {
        if self.attempts >= limit.max(1) {
            self.locked_until = Some(now + lockout);
            return Err(lockout.as_secs().max(1));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Address {
    counter: Counter,
    /// Argon2 verifications this address has queued or running.
    pending: usize,
    logins: HashMap<String, Counter>,
}

impl Address {
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.pending == 0
            && self.counter.expired(now, window)
            && self.logins.values().all(|c| c.expired(now, window))
    }
}

#[derive(Debug)]
struct Table {
    addresses: HashMap<IpAddr, Address>,
    last_sweep: Instant,
}

/// Shared by the [`Authenticator`](super::auth::Authenticator) and each
/// [`Pending`] it hands out.
pub struct Throttle {
    limits: Limits,
    table: Arc<Mutex<Table>>,
}

/// One argon2 verification an address has queued; dropped when it is done
/// or abandoned.
pub struct Pending {
    table: Arc<Mutex<Table>>,
    key: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(a) = self.table.lock().addresses.get_mut(&self.key) {
            a.pending = a.pending.saturating_sub(1);
        }
    }
}

/// Peers whose address is not known share this key.
const UNKNOWN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// New addresses while the table is full of live entries get this key,
/// which is never stored (no peer has the address `::`).
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// IPv4 as it is (also when mapped into IPv6), IPv6 by its /64.
fn key_of(peer: Option<IpAddr>) -> IpAddr {
    match peer {
        None => UNKNOWN,
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Throttle {
    pub fn new(settings: &AuthSettings) -> Throttle {
        Throttle {
            limits: Limits {
                per_login: settings.max_failures,
                per_address: settings.max_failures_per_address,
                window: Duration::from_secs(settings.failure_window_secs),
                lockout: Duration::from_secs(settings.lockout_secs),
                pending_per_address: settings.max_pending_per_address.max(1),
                tracked_addresses: settings.tracked_addresses.max(1),
            },
            table: Arc::new(Mutex::new(Table {
                addresses: HashMap::new(),
                last_sweep: Instant::now(),
            })),
        }
    }

    /// Admits (and counts) one check of a credential for `login` from
    /// `peer` that is not already known to be right; `argon2`: it needs a
    /// slow verification, which then holds one of the address's pending
    /// slots until the returned [`Pending`] is dropped.
    pub fn admit(
        &self,
        login: &str,
        peer: Option<IpAddr>,
        argon2: bool,
    ) -> Result<Option<Pending>, Refusal> {
        let l = &self.limits;
        let now = Instant::now();
        let mut table = self.table.lock();
        let key = table.key_for(key_of(peer), now, l);
        if key == OVERFLOW {
            // Untracked (see the module's comment): admitted, uncounted.
            return Ok(None);
        }
        let address = table.addresses.entry(key).or_insert_with(|| Address {
            counter: Counter::new(now),
            pending: 0,
            logins: HashMap::new(),
        });
        address.counter.refresh(now, l.window);
        if let Some(secs) = address.counter.locked(now) {
            return Err(Refusal::Throttled(secs));
        }
        if let Some(c) = address.logins.get_mut(login) {
            c.refresh(now, l.window);
            if let Some(secs) = c.locked(now) {
                return Err(Refusal::Throttled(secs));
            }
        }
        if argon2 && address.pending >= l.pending_per_address {
            return Err(Refusal::TooManyPending);
        }
        if address.logins.len() >= 2 * l.per_address.max(1) as usize {
            // Entries of past windows; the live ones are bounded by the
            // address's own limit.
            address.logins.retain(|_, c| !c.expired(now, l.window));
        }
        let per_login = address
            .logins
            .entry(login.to_owned())
            .or_insert_with(|| Counter::new(now));
        per_login
            .take(now, l.per_login, l.lockout)
            .map_err(Refusal::Throttled)?;
        address
            .counter
            .take(now, l.per_address, l.lockout)
            .map_err(Refusal::Throttled)?;
        if let Some(c) = address.logins.get_mut(login) {
            c.attempts += 1;
        }
        address.counter.attempts += 1;
        if !argon2 {
            return Ok(None);
        }
        address.pending += 1;
        Ok(Some(Pending {
            table: self.table.clone(),
            key,
        }))
    }

    /// The right credential: the login's attempts from this address are
    /// forgiven, and this one attempt of the address.
    pub fn succeeded(&self, login: &str, peer: Option<IpAddr>) {
        let mut table = self.table.lock();
        if let Some(a) = table.addresses.get_mut(&key_of(peer)) {
            if a.logins.remove(login).is_some() {
                a.counter.attempts = a.counter.attempts.saturating_sub(1);
            }
        }
    }

    /// Addresses tracked now (for the tests of the bound).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().addresses.len()
    }
}

impl Table {
    /// The address's own entry, or the overflow entry when the table is
    /// full of live ones.
    fn key_for(&mut self, key: IpAddr, now: Instant, l: &Limits) -> IpAddr {
        if self.addresses.contains_key(&key) {
            return key;
        }
        if self.addresses.len() >= l.tracked_addresses
            && now.duration_since(self.last_sweep) >= Duration::from_secs(1)
        {
            // At most once a second: a full table of live entries must not
            // cost a scan per request.
            self.last_sweep = now;
            self.addresses.retain(|_, a| !a.idle(now, l.window));
        }
        if self.addresses.len() >= l.tracked_addresses {
            OVERFLOW
        } else {
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_login: u32, per_address: u32, tracked: usize) -> Throttle {
        let mut s = crate::config::Settings::defaults().auth;
        s.max_failures = per_login;
        s.max_failures_per_address = per_address;
        s.max_pending_per_address = 2;
        s.tracked_addresses = tracked;
        Throttle::new(&s)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_login_is_locked_per_address() {
        let t = throttle(3, 100, 10);
        for _ in 0..3 {
            t.admit("till-1", ip("10.0.0.9"), false).unwrap();
        }
        assert!(matches!(
            t.admit("till-1", ip("10.0.0.9"), false),
            Err(Refusal::Throttled(_))
        ));
        // The till itself, elsewhere, is not.
        t.admit("till-1", ip("10.0.0.1"), false).unwrap();
    }

    #[test]
    fn an_address_is_limited_across_logins_and_in_pending_verifications() {
        let t = throttle(100, 4, 10);
        let a = t.admit("a", ip("10.0.0.9"), true).unwrap();
        let _b = t.admit("b", ip("10.0.0.9"), true).unwrap();
        assert_eq!(
            t.admit("c", ip("10.0.0.9"), true).err(),
            Some(Refusal::TooManyPending)
        );
        drop(a);
        t.admit("c", ip("10.0.0.9"), true).unwrap();
        t.admit("d", ip("10.0.0.9"), false).unwrap();
        assert!(matches!(
            t.admit("e", ip("10.0.0.9"), false),
            Err(Refusal::Throttled(_))
        ));
    }

    #[test]
    fn success_forgives_the_login_and_ipv6_counts_per_64() {
        let t = throttle(2, 100, 10);
        t.admit("x", ip("2001:db8::1"), false).unwrap();
        t.succeeded("x", ip("2001:db8::1"));
        t.admit("x", ip("2001:db8::2"), false).unwrap();
        t.admit("x", ip("2001:db8::3"), false).unwrap();
        assert!(t.admit("x", ip("2001:db8::4"), false).is_err());
        t.admit("x", ip("2001:db8:0:1::4"), false).unwrap();
    }

    #[test]
    fn a_full_table_never_evicts_a_lockout() {
        let t = throttle(1, 100, 3);
        t.admit("admin", ip("10.0.0.9"), false).unwrap();
        assert!(t.admit("admin", ip("10.0.0.9"), false).is_err());
        for i in 0..1000u32 {
            let _ = t.admit(&format!("u{i}"), Some(IpAddr::from(i.to_be_bytes())), false);
        }
        assert!(t.tracked() <= 4, "{}", t.tracked());
        assert!(matches!(
            t.admit("admin", ip("10.0.0.9"), false),
            Err(Refusal::Throttled(_))
        ));
    }

    /// Found by review: addresses beyond a full table shared one entry, so
    /// strangers' failures there locked out the next client, the admin too.
    #[test]
    fn strangers_beyond_a_full_table_lock_nobody_out() {
        let t = throttle(2, 5, 2);
        t.admit("u0", ip("10.0.0.1"), false).unwrap();
        t.admit("u1", ip("10.0.0.2"), false).unwrap();
        for i in 0..100u32 {
            let _ = t.admit(
                "admin",
                Some(IpAddr::from((0x0b00_0000 + i).to_be_bytes())),
                false,
            );
        }
        assert_eq!(
            t.admit("admin", ip("192.0.2.7"), true).map(|p| p.is_some()),
            Ok(false)
        );
        assert!(t.tracked() <= 2, "{}", t.tracked());
    }
}
