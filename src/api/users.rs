//! The users file (docs/api.md §12): logins, roles and their credentials: an
//! argon2id PHC hash (people), a till token's SHA-256 (machines), and/or
//! the subject CN of a TLS client certificate.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;

use super::till_token;
use crate::domain::Role;

#[derive(Deserialize)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
struct UserEntry {
    login: String,
    role: String,
    #[serde(default)]
    password_hash: Option<String>,
    /// SHA-256 (hex) of a till token (`loyalty issue-till-token`).
    #[serde(default)]
    token_sha256: Option<String>,
    /// A verified TLS client certificate with this subject CN logs in as
    /// this user.
    #[serde(default)]
    client_cert_cn: Option<String>,
    /// Demo users have published passwords (see the README).
    #[serde(default)]
    demo: bool,
}

/// Equality tells a reload which logins changed.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub token_sha256: Option<[u8; 32]>,
    pub client_cert_cn: Option<String>,
    pub demo: bool,
}

/// A password hash can be attacked offline, so a debug print (which may
/// end up in a log) says only whether a credential is set.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<none>" };
        f.debug_struct("User")
            .field("login", &self.login)
            .field("role", &self.role)
            .field("password_hash", &set(self.password_hash.is_some()))
            .field("token_sha256", &set(self.token_sha256.is_some()))
            .field("client_cert_cn", &self.client_cert_cn)
            .field("demo", &self.demo)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Only the message and position: the parser's own rendering quotes the
    /// offending line, which may hold a hash.
    #[error("the users file {path} is not valid TOML: {message} (line {line})")]
    Parse {
        path: String,
        message: String,
        line: usize,
    },
    #[error("user {login:?} in {path}: {problem}")]
    Invalid {
        path: String,
        login: String,
        problem: String,
    },
}

/// Reads the users file (at start and at every reload). Logs the one
/// till-token shape the server accepts when the file has token users: the
/// SHA-256 of a secret of another shape can never log in, and nothing in
/// the digest tells the server so.
pub fn load(path: &Path) -> Result<HashMap<String, User>, UsersError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
        path: shown.clone(),
        source,
    })?;
    let users = parse(&text, &shown)?;
    if let Some(notice) = token_notice(users.values()) {
        tracing::info!(users_file = %shown, "{notice}");
    }
    Ok(users)
}

/// What the log says at load about the users with a `token_sha256`.
pub fn token_notice<'a>(users: impl IntoIterator<Item = &'a User>) -> Option<String> {
    let tokens = users
        .into_iter()
        .filter(|u| u.token_sha256.is_some())
        .count();
    (tokens > 0).then(|| {
        format!(
            "{tokens} user(s) log in with a till token: only a password of the form {} followed by \
             {} base64url characters (loyalty issue-till-token) is checked against token_sha256; \
             the SHA-256 of a secret of any other shape never logs in",
            till_token::PREFIX,
            till_token::ENCODED_LEN
        )
    })
}

pub fn parse(text: &str, path: &str) -> Result<HashMap<String, User>, UsersError> {
    let file: UsersFile = toml::from_str(text).map_err(|e| UsersError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
        line: e
            .span()
            .map_or(0, |s| lines_before(text.as_bytes(), s.start) + 1),
    })?;
    let mut users = HashMap::new();
    for entry in file.users {
        let invalid = |problem: String| UsersError::Invalid {
            path: path.to_owned(),
            login: entry.login.clone(),
            problem,
        };
        if entry.login.is_empty() || entry.login.contains(':') {
            return Err(invalid(
                "a login must be non-empty and must not contain ':'".into(),
            ));
        }
        let role = Role::parse(&entry.role)
            .ok_or_else(|| invalid(format!("unknown role {:?}", entry.role)))?;
        // Parse now so that a broken hash fails at start, not at login.
        if let Some(text) = &entry.password_hash {
            let hash = PasswordHash::new(text)
                .map_err(|e| invalid(format!("password_hash is not a PHC string: {e}")))?;
            if hash.algorithm.as_str() != "argon2id" {
                return Err(invalid(format!(
                    "password_hash must be argon2id, not {}",
                    hash.algorithm
                )));
            }
        }
        let token_sha256 = match &entry.token_sha256 {
            Some(hex) => Some(till_token::parse_hex_digest(hex).ok_or_else(|| {
                invalid("token_sha256 must be 64 hex digits (loyalty issue-till-token)".into())
            })?),
            None => None,
        };
        if entry.password_hash.is_none() && token_sha256.is_none() && entry.client_cert_cn.is_none()
        {
            return Err(invalid(
                "a user needs password_hash, token_sha256 or client_cert_cn".into(),
            ));
        }
        if let Some(cn) = &entry.client_cert_cn {
            if cn.is_empty()
                || users
                    .values()
                    .any(|u: &User| u.client_cert_cn.as_ref() == Some(cn))
            {
                return Err(invalid(
                    "client_cert_cn must be non-empty and name one user only".into(),
                ));
            }
        }
        if users.contains_key(&entry.login) {
            return Err(invalid("the login appears twice".into()));
        }
        users.insert(
            entry.login.clone(),
            User {
                login: entry.login,
                role,
                password_hash: entry.password_hash,
                token_sha256,
                client_cert_cn: entry.client_cert_cn,
                demo: entry.demo,
            },
        );
    }
    Ok(users)
}

fn lines_before(text: &[u8], at: usize) -> usize {
    text[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRIES: &str = "[[users]]\nlogin = \"a\"\nrole = \"pos\"\n\
        password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$QkdHM2pqd1ZpRE5hY0FGcWh6bXJGQQ\"\n\
        [[users]]\nlogin = \"till\"\nrole = \"pos\"\n\
        token_sha256 = \"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f\"\n";

    #[test]
    fn the_load_says_which_token_shape_is_accepted_when_there_are_token_users() {
        let users = parse(ENTRIES, "u.toml").unwrap();
        let notice = token_notice(users.values()).unwrap();
        assert!(notice.starts_with("1 user(s)"), "{notice}");
        assert!(notice.contains("lt1_ followed by 43 base64url"), "{notice}");
        assert_eq!(
            token_notice(users.values().filter(|u| u.login == "a")),
            None
        );
    }

    #[test]
    fn a_debug_print_shows_no_hash() {
        let users = parse(ENTRIES, "u.toml").unwrap();
        let shown = format!("{users:?}");
        assert!(
            !shown.contains("argon2id") && !shown.contains("0f0f"),
            "{shown}"
        );
        assert!(shown.contains("<set>"), "{shown}");
    }
}
