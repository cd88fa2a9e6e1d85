//! Demo users have published passwords (README: `<login>-demo`). Whoever
//! copies `config/demo-users.toml`, renames its logins, drops its
//! `demo = true` lines or hashes a published password anew must still not
//! expose those credentials beyond loopback: the guard looks at what the
//! hashes verify, not at a flag.

use std::collections::HashSet;
use std::net::SocketAddr;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;

use crate::api::users::{self, User};

/// The shipped demo users file: its hashes, and the logins whose
/// `<login>-demo` passwords the README publishes.
const SHIPPED_DEMO_USERS: &str = include_str!("../../config/demo-users.toml");

/// The published demo passwords.
fn published_passwords() -> Vec<String> {
    shipped()
        .into_iter()
        .map(|u| format!("{}-demo", u.login))
        .collect()
}

fn shipped() -> Vec<User> {
    users::parse(SHIPPED_DEMO_USERS, "config/demo-users.toml (built in)")
        .expect("the shipped demo users file is valid")
        .into_values()
        .collect()
}

/// The logins among `users` that a published demo password opens (or that
/// are marked `demo = true`), sorted.
fn demo_logins<'a>(users: impl IntoIterator<Item = &'a User>) -> Vec<String> {
    let shipped_hashes: HashSet<String> = shipped()
        .into_iter()
        .filter_map(|u| u.password_hash)
        .collect();
    let passwords = published_passwords();
    let mut suspects = Vec::new();
    let mut found = Vec::new();
    for user in users {
        // A copy keeps the shipped hashes: no need to run argon2 on them.
        let Some(hash) = user.password_hash.as_deref() else {
            // Token-only and certificate-only users have no password.
            if user.demo {
                found.push(user.login.clone());
            }
            continue;
        };
        if user.demo || shipped_hashes.contains(hash) {
            found.push(user.login.clone());
        } else {
            suspects.push(user);
        }
    }
    // Argon2 is slow on purpose (tens of ms per verification): spread the
    // users over the cores.
    let threads = num_cpus::get().clamp(1, 8);
    let chunk = suspects.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = suspects
            .chunks(chunk)
            .map(|part| {
                let passwords = &passwords;
                scope.spawn(move || {
                    part.iter()
                        .filter(|u| {
                            u.password_hash
                                .as_deref()
                                .is_some_and(|h| opens(h, passwords))
                        })
                        .map(|u| u.login.clone())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            found.extend(w.join().unwrap_or_default());
        }
    });
    found.sort();
    found
}

fn opens(hash: &str, passwords: &[String]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    passwords.iter().any(|p| {
        Argon2::default()
            .verify_password(p.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Refuses demo credentials on a public bind (`public`: which setting, from
/// [`public_bind`]) unless the operator allowed them explicitly.
pub fn refuse_public_demo_credentials<'a>(
    public: Option<&str>,
    allowed: bool,
    users_file: &str,
    users: impl IntoIterator<Item = &'a User>,
) -> anyhow::Result<()> {
    let Some(public) = public else {
        return Ok(());
    };
    if allowed {
        return Ok(());
    }
    let logins = demo_logins(users);
    if logins.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the users file {users_file} holds demo users (published passwords: {}) and {public} is not a loopback address; \
         configure real users (loyalty hash-password) or set http.allow_demo_credentials_on_public_bind = true",
        logins.join(", ")
    )
}

/// The first listener (plain or HTTPS) not on a loopback address.
pub fn public_bind(http: &crate::config::HttpSettings) -> Option<String> {
    if !is_loopback(&http.bind) {
        return Some(format!("http.bind = {}", http.bind));
    }
    if http.tls.enabled() && !is_loopback(&http.tls.bind) {
        return Some(format!("http.tls.bind = {}", http.tls.bind));
    }
    None
}

pub fn is_loopback(bind: &str) -> bool {
    if let Ok(addr) = bind.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    bind.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::hash_password;
    use crate::config::Settings;
    use crate::domain::Role;

    const PUBLIC: Option<&str> = Some("http.bind = 0.0.0.0:8080");

    fn user(login: &str, hash: String) -> User {
        User {
            login: login.into(),
            role: Role::Pos,
            password_hash: Some(hash),
            token_sha256: None,
            client_cert_cn: None,
            demo: false,
        }
    }

    #[test]
    fn an_https_listener_counts_as_a_public_bind_too() {
        let mut http = Settings::defaults().http;
        assert_eq!(public_bind(&http), None);
        http.tls.bind = "0.0.0.0:8443".into();
        assert_eq!(public_bind(&http), None, "HTTPS is off");
        http.tls.cert_file = "cert.pem".into();
        assert_eq!(
            public_bind(&http).as_deref(),
            Some("http.tls.bind = 0.0.0.0:8443")
        );
        http.bind = "0.0.0.0:8080".into();
        assert_eq!(
            public_bind(&http).as_deref(),
            Some("http.bind = 0.0.0.0:8080")
        );
    }

    #[test]
    fn loopback_binds() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("127.1.2.3:0"));
        assert!(is_loopback("[::1]:8080"));
        assert!(is_loopback("localhost:8080"));
        assert!(!is_loopback("0.0.0.0:8080"));
        assert!(!is_loopback("[::]:8080"));
        assert!(!is_loopback("10.0.0.1:80"));
    }

    #[test]
    fn a_copy_without_its_demo_flags_is_still_demo() {
        let copy = SHIPPED_DEMO_USERS.replace("demo = true", "");
        let users = users::parse(&copy, "copy.toml").unwrap();
        assert!(users.values().all(|u| !u.demo));
        assert_eq!(demo_logins(users.values()).len(), 7);
        let refused = refuse_public_demo_credentials(PUBLIC, false, "copy.toml", users.values());
        assert!(refused.unwrap_err().to_string().contains("admin"));
        assert!(refuse_public_demo_credentials(PUBLIC, true, "copy.toml", users.values()).is_ok());
        assert!(refuse_public_demo_credentials(None, false, "copy.toml", users.values()).is_ok());
    }

    #[test]
    fn a_published_password_hashed_anew_under_another_login_is_demo() {
        let users = [
            user("till-1", hash_password("admin-demo").unwrap()),
            user("till-2", hash_password("a real secret").unwrap()),
        ];
        assert_eq!(demo_logins(&users), vec!["till-1".to_owned()]);
        assert!(refuse_public_demo_credentials(PUBLIC, false, "u.toml", &users).is_err());
        assert!(refuse_public_demo_credentials(PUBLIC, false, "u.toml", &users[1..]).is_ok());
    }
}
