//! The users file (API.md §12): logins, roles and argon2id PHC hashes.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;

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
    password_hash: String,
    /// Demo users have published passwords (see the README).
    #[serde(default)]
    demo: bool,
}

#[derive(Debug, Clone)]
pub struct User {
    pub login: String,
    pub role: Role,
    pub password_hash: String,
    pub demo: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the users file {path} is not valid TOML: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
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
    let file: UsersFile = toml::from_str(text).map_err(|source| UsersError::Parse {
        path: path.to_owned(),
        source,
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
        let hash = PasswordHash::new(&entry.password_hash)
            .map_err(|e| invalid(format!("password_hash is not a PHC string: {e}")))?;
        if hash.algorithm.as_str() != "argon2id" {
            return Err(invalid(format!(
                "password_hash must be argon2id, not {}",
                hash.algorithm
            )));
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
                demo: entry.demo,
            },
        );
    }
    Ok(users)
}
