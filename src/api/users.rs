//! The users file (API.md §12): logins, roles and their credentials: an
//! argon2id PHC hash (people), a till token's SHA-256 (machines), and/or
//! the subject CN of a TLS client certificate.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;

use super::till_token;
use crate::domain::Role;

#[derive(Debug, Clone, Deserialize)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub login: String,
    pub role: Role,
    pub password_hash: Option<String>,
    pub token_sha256: Option<[u8; 32]>,
    pub client_cert_cn: Option<String>,
    pub demo: bool,
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

pub fn load(path: &Path) -> Result<HashMap<String, User>, UsersError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text, &shown)
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
