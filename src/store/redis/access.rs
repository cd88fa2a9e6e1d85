//! How this process reaches Redis: TLS (`rediss://`, rustls) and the ACL
//! user. Every connection it opens — the store's pool, the cache's RESP3
//! tracking channel, the archiver, `loyalty export`/`import` — is made from
//! one `RedisAccess`, so none of them can reach Redis in a weaker way than
//! the others.
//!
//! The password comes from `store.password_file` or the
//! `LOYALTY_STORE_PASSWORD` environment variable (or, as before, the URL):
//! never from the command line, where the process list would show it. It
//! is kept in a type whose `Debug` prints `***`.

use std::sync::Arc;

use redis::cluster::ClusterClientBuilder;
use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError,
    RedisResult, TlsCertificates,
};

use crate::config::StoreSettings;

/// The environment variable that may hold the Redis password (not a
/// `LOYALTY__…` config key: it never enters the settings tree, so no dump
/// of the settings can show it).
pub const PASSWORD_ENV: &str = "LOYALTY_STORE_PASSWORD";

/// The Redis password; shown as `***` whatever prints it.
#[derive(Clone)]
struct Password(Arc<str>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The ACL user and TLS settings applied to every connection to Redis.
#[derive(Clone, Default)]
pub struct RedisAccess {
    username: Option<String>,
    password: Option<Password>,
    /// Set when a CA or a client certificate is configured; otherwise a
    /// `rediss://` URL trusts the system's roots.
    tls: Option<TlsCertificates>,
}

impl std::fmt::Debug for RedisAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAccess")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .finish()
    }
}

fn config_error(what: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "store settings", what))
}

fn read(setting: &str, path: &str) -> RedisResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_error(format!("{setting} {path:?}: {e}")))
}

impl RedisAccess {
    /// From the store settings and the environment; reads the files now, so
    /// that a missing or unreadable one stops the start with its name.
    pub fn from_settings(store: &StoreSettings) -> RedisResult<RedisAccess> {
        Self::resolve(store, std::env::var(PASSWORD_ENV).ok())
    }

    fn resolve(store: &StoreSettings, env_password: Option<String>) -> RedisResult<RedisAccess> {
        let from_file = if store.password_file.is_empty() {
            None
        } else {
            let bytes = read("store.password_file", &store.password_file)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                config_error(format!(
                    "store.password_file {:?}: not UTF-8",
                    store.password_file
                ))
            })?;
            // Files written by `echo` or an editor end with a newline that
            // is not part of the password.
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        };
        let password = match (from_file, env_password.filter(|p| !p.is_empty())) {
            (Some(_), Some(_)) => {
                return Err(config_error(format!(
                    "store.password_file and {PASSWORD_ENV} are both set: keep one"
                )))
            }
            (Some(p), None) | (None, Some(p)) => {
                if p.is_empty() {
                    return Err(config_error(format!(
                        "store.password_file {:?} is empty",
                        store.password_file
                    )));
                }
                Some(Password(p.into()))
            }
            (None, None) => None,
        };
        let tls = &store.tls;
        let client_tls =
            match (tls.cert_file.is_empty(), tls.key_file.is_empty()) {
                (true, true) => None,
                (false, false) => Some(ClientTlsConfig {
                    client_cert: read("store.tls.cert_file", &tls.cert_file)?,
                    client_key: read("store.tls.key_file", &tls.key_file)?,
                }),
                _ => return Err(config_error(
                    "store.tls.cert_file and store.tls.key_file go together: set both or neither"
                        .to_owned(),
                )),
            };
        let root_cert = if tls.ca_file.is_empty() {
            None
        } else {
            Some(read("store.tls.ca_file", &tls.ca_file)?)
        };
        let tls = (client_tls.is_some() || root_cert.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        });
        Ok(RedisAccess {
            username: Some(store.username.clone()).filter(|u| !u.is_empty()),
            password,
            tls,
        })
    }

    /// How the sentinels are reached (`store.sentinel`): their own user and
    /// password (a sentinel's users are not the data nodes'), the store's
    /// TLS files.
    pub fn for_sentinels(store: &StoreSettings) -> RedisResult<RedisAccess> {
        let s = &store.sentinel;
        let password = if s.password_file.is_empty() {
            None
        } else {
            let bytes = read("store.sentinel.password_file", &s.password_file)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                config_error(format!(
                    "store.sentinel.password_file {:?}: not UTF-8",
                    s.password_file
                ))
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(config_error(format!(
                    "store.sentinel.password_file {:?} is empty",
                    s.password_file
                )));
            }
            Some(Password(text.into()))
        };
        let data = Self::from_settings(store)?;
        Ok(RedisAccess {
            username: Some(s.username.clone()).filter(|u| !u.is_empty()),
            password,
            tls: data.tls,
        })
    }

    /// A client for the node at `host:port` (as Sentinel names it), over
    /// TLS when `tls`, database 0.
    pub fn node_client(&self, host: &str, port: u16, tls: bool) -> RedisResult<redis::Client> {
        let scheme = if tls { "rediss" } else { "redis" };
        // An IPv6 address goes in brackets in a URL.
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        self.client(&format!("{scheme}://{host}:{port}/0"))
    }

    /// A client for one node's URL, with our user and TLS settings.
    pub fn client(&self, url: &str) -> RedisResult<redis::Client> {
        crate::tls::install_crypto_provider();
        let info = self.connection_info(url)?;
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }

    /// A cluster client builder for the seed URLs, with our user and TLS
    /// settings (timeouts and retries are the caller's).
    pub fn cluster(&self, seeds: &[String]) -> RedisResult<ClusterClientBuilder> {
        crate::tls::install_crypto_provider();
        for seed in seeds {
            self.connection_info(seed)?;
        }
        let mut builder = ClusterClientBuilder::new(seeds.to_vec());
        if let Some(user) = &self.username {
            builder = builder.username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.password(&*password.0);
        }
        if let Some(certs) = &self.tls {
            builder = builder.certs(certs.clone());
        }
        Ok(builder)
    }

    /// The URL's connection info with our user and password; refuses what
    /// would connect less safely than configured.
    fn connection_info(&self, url: &str) -> RedisResult<ConnectionInfo> {
        let info = url.into_connection_info()?;
        match info.addr() {
            // redis-rs' `#insecure` URL fragment skips the certificate and
            // server name checks: a man in the middle would get the password.
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(config_error(
                    "store.url: `#insecure` (no certificate check) is refused; give the CA in store.tls.ca_file".to_owned(),
                ))
            }
            ConnectionAddr::TcpTls { .. } => {}
            _ if self.tls.is_some() => {
                return Err(config_error(
                    "store.tls files are set but store.url is not rediss://: the connection would not be encrypted".to_owned(),
                ))
            }
            _ => {}
        }
        let mut redis = info.redis_settings().clone();
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(&*password.0);
        }
        Ok(info.set_redis_settings(redis))
    }
}

/// Whether connecting failed for a reason only the operator can fix — a
/// wrong setting, user or password, or a server certificate we do not
/// trust — rather than an outage that may end by itself: such a failure
/// stops the start instead of being waited out.
pub fn is_misconfiguration(e: &RedisError) -> bool {
    if matches!(
        e.kind(),
        ErrorKind::InvalidClientConfig | ErrorKind::AuthenticationFailed
    ) {
        return true;
    }
    // A TLS refusal comes as an I/O error wrapping rustls' error; the
    // chain's `source()` skips the wrapped error itself, so look inside.
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        next = err.source();
    }
    // The connection manager hands back a copy of the first attempt's
    // error that keeps its text but not the typed chain: recognise rustls'
    // own wording (its `Display` for a refused certificate, for an alert
    // the server sent — e.g. our client certificate refused —, and for no
    // common TLS version or cipher).
    let text = e.to_string();
    e.kind() == ErrorKind::Io
        && [
            "invalid peer certificate",
            "received fatal alert",
            "peer is incompatible",
        ]
        .iter()
        .any(|m| text.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(f: impl FnOnce(&mut StoreSettings)) -> StoreSettings {
        let mut s = crate::config::Settings::defaults().store;
        f(&mut s);
        s
    }

    #[test]
    fn the_password_file_is_read_without_its_newline_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cr3t-pw\n").unwrap();
        let s = store(|s| {
            s.username = "loyalty".into();
            s.password_file = path.display().to_string();
        });
        let access = RedisAccess::resolve(&s, None).unwrap();
        let shown = format!("{access:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let info = access.connection_info("redis://127.0.0.1:1/0").unwrap();
        assert_eq!(info.redis_settings().password(), Some("s3cr3t-pw"));
        assert_eq!(info.redis_settings().username(), Some("loyalty"));
        assert!(!format!("{:?}", access.client("redis://h:1").unwrap()).contains("s3cr3t"));
    }

    #[test]
    fn the_environment_gives_the_password_but_not_together_with_a_file() {
        let s = store(|_| {});
        let access = RedisAccess::resolve(&s, Some("from-env".into())).unwrap();
        let info = access.connection_info("redis://h:1").unwrap();
        assert_eq!(info.redis_settings().password(), Some("from-env"));
        let s = store(|s| s.password_file = "/nonexistent/pw".into());
        let e = RedisAccess::resolve(&s, None).unwrap_err();
        assert!(is_misconfiguration(&e) && e.to_string().contains("/nonexistent/pw"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "a").unwrap();
        let s = store(|s| s.password_file = path.display().to_string());
        let e = RedisAccess::resolve(&s, Some("b".into())).unwrap_err();
        assert!(e.to_string().contains(PASSWORD_ENV), "{e}");
    }

    #[test]
    fn tls_files_need_a_rediss_url_and_insecure_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not checked until a connection").unwrap();
        let s = store(|s| s.tls.ca_file = ca.display().to_string());
        let access = RedisAccess::resolve(&s, None).unwrap();
        let e = access.connection_info("redis://h:1").unwrap_err();
        assert!(
            is_misconfiguration(&e) && e.to_string().contains("rediss://"),
            "{e}"
        );
        let e = RedisAccess::default()
            .connection_info("rediss://h:1/#insecure")
            .unwrap_err();
        assert!(e.to_string().contains("#insecure"), "{e}");
        let s = store(|s| s.tls.cert_file = ca.display().to_string());
        assert!(RedisAccess::resolve(&s, None).is_err());
    }
}
