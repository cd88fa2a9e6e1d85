//! The users the server currently accepts, replaced whole on a reload.
//! A user that a reload leaves unchanged keeps its `Arc`: cached
//! verifications name the `Arc` they were made against, so they stay valid
//! for unchanged users and die with a changed or removed one.

use std::collections::HashMap;
use std::sync::Arc;

use super::users::User;

#[derive(Default)]
pub struct UsersTable {
    by_login: HashMap<String, Arc<User>>,
    by_cert_cn: HashMap<String, Arc<User>>,
}

/// What a reload changed (logins are not secrets; they go to the log).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UsersChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl UsersChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl UsersTable {
    pub fn new(users: HashMap<String, User>) -> UsersTable {
        UsersTable::default().successor(users).0
    }

    pub fn successor(&self, users: HashMap<String, User>) -> (UsersTable, UsersChange) {
        let mut change = UsersChange::default();
        let mut by_login = HashMap::with_capacity(users.len());
        for (login, user) in users {
            let kept = match self.by_login.get(&login) {
                Some(old) if **old == user => old.clone(),
                Some(_) => {
                    change.changed.push(login.clone());
                    Arc::new(user)
                }
                None => {
                    change.added.push(login.clone());
                    Arc::new(user)
                }
            };
            by_login.insert(login, kept);
        }
        change.removed = self
            .by_login
            .keys()
            .filter(|login| !by_login.contains_key(*login))
            .cloned()
            .collect();
        for list in [&mut change.added, &mut change.removed, &mut change.changed] {
            list.sort();
        }
        let by_cert_cn = by_login
            .values()
            .filter_map(|u| Some((u.client_cert_cn.clone()?, u.clone())))
            .collect();
        (
            UsersTable {
                by_login,
                by_cert_cn,
            },
            change,
        )
    }

    pub fn get(&self, login: &str) -> Option<&Arc<User>> {
        self.by_login.get(login)
    }

    pub fn by_client_cert_cn(&self, cn: &str) -> Option<&Arc<User>> {
        self.by_cert_cn.get(cn)
    }

    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.by_login.values()
    }

    pub fn len(&self) -> usize {
        self.by_login.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_login.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn user(login: &str, role: Role) -> (String, User) {
        (
            login.to_owned(),
            User {
                login: login.to_owned(),
                role,
                password_hash: None,
                token_sha256: Some([1; 32]),
                client_cert_cn: Some(format!("cn-{login}")),
                demo: false,
            },
        )
    }

    #[test]
    fn a_successor_keeps_unchanged_users_and_names_what_changed() {
        let old = UsersTable::new(HashMap::from([
            user("a", Role::Pos),
            user("b", Role::Pos),
            user("c", Role::Pos),
        ]));
        let (new, change) = old.successor(HashMap::from([
            user("a", Role::Pos),
            user("b", Role::Administrator),
            user("d", Role::Pos),
        ]));
        assert!(Arc::ptr_eq(old.get("a").unwrap(), new.get("a").unwrap()));
        assert!(!Arc::ptr_eq(old.get("b").unwrap(), new.get("b").unwrap()));
        assert_eq!(
            change,
            UsersChange {
                added: vec!["d".into()],
                removed: vec!["c".into()],
                changed: vec!["b".into()],
            }
        );
        assert_eq!(new.by_client_cert_cn("cn-d").unwrap().login, "d");
        assert!(new.by_client_cert_cn("cn-c").is_none());
    }
}
