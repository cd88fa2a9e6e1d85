//! The Lua scripts, compiled in. Each is invoked with EVALSHA; a server that
//! does not know it (restart, failover, SCRIPT FLUSH, a new cluster node)
//! answers NOSCRIPT and gets the full EVAL, routed by the same keys, which
//! also caches it on that node. So no NOSCRIPT failure is ever permanent, on
//! one node or on a cluster (where a SCRIPT LOAD would reach a random node).

use redis::Cmd;

/// Functions shared by the scripts that touch a card's records.
const RECORDS: &str = include_str!("lua/records.lua");

pub struct Lua {
    pub name: &'static str,
    code: String,
    hash: String,
    /// A read-only script: a failure cannot have written anything.
    pub read_only: bool,
}

impl Lua {
    fn new(name: &'static str, code: &str) -> Lua {
        Lua {
            name,
            hash: redis::Script::new(code).get_hash().to_owned(),
            read_only: code.starts_with("#!lua flags=no-writes"),
            code: code.to_owned(),
        }
    }

    /// A script that reads or writes a card's records: the functions of
    /// `records.lua` go in after its first line (the `#!lua` line must stay
    /// first).
    fn with_records(name: &'static str, code: &str) -> Lua {
        let (shebang, body) = code.split_once('\n').unwrap_or((code, ""));
        let full = format!("{shebang}\n{RECORDS}\n{body}");
        Lua::new(name, &full)
    }

    /// `EVALSHA` (or, with `full`, `EVAL`) of this script.
    pub fn command(&self, full: bool, keys: &[&str], args: &[&[u8]]) -> Cmd {
        let mut cmd = if full {
            let mut c = redis::cmd("EVAL");
            c.arg(&self.code);
            c
        } else {
            let mut c = redis::cmd("EVALSHA");
            c.arg(&self.hash);
            c
        };
        cmd.arg(keys.len());
        for k in keys {
            cmd.arg(*k);
        }
        for a in args {
            cmd.arg(*a);
        }
        cmd
    }
}

pub struct Scripts {
    pub insert_card: Lua,
    pub update_card: Lua,
    pub confirm_purchase: Lua,
    pub put_contact: Lua,
    pub fence_contact: Lua,
    pub index_get: Lua,
    pub index_claim: Lua,
    pub index_release: Lua,
    pub card_history: Lua,
    pub card_with_record: Lua,
    pub card_record: Lua,
    pub restore_card: Lua,
    pub restore_record: Lua,
    pub dump_card: Lua,
    pub dump_cards: Lua,
    pub dump_records: Lua,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            insert_card: Lua::new("insert_card", include_str!("lua/insert_card.lua")),
            update_card: Lua::with_records("update_card", include_str!("lua/update_card.lua")),
            confirm_purchase: Lua::with_records(
                "confirm_purchase",
                include_str!("lua/confirm_purchase.lua"),
            ),
            put_contact: Lua::new("put_contact", include_str!("lua/put_contact.lua")),
            fence_contact: Lua::new("fence_contact", include_str!("lua/fence_contact.lua")),
            index_get: Lua::new("index_get", include_str!("lua/index_get.lua")),
            index_claim: Lua::new("index_claim", include_str!("lua/index_claim.lua")),
            index_release: Lua::new("index_release", include_str!("lua/index_release.lua")),
            card_history: Lua::new("card_history", include_str!("lua/card_history.lua")),
            card_with_record: Lua::with_records(
                "card_with_record",
                include_str!("lua/card_with_record.lua"),
            ),
            card_record: Lua::with_records("card_record", include_str!("lua/card_record.lua")),
            restore_card: Lua::new("restore_card", include_str!("lua/restore_card.lua")),
            restore_record: Lua::with_records(
                "restore_record",
                include_str!("lua/restore_record.lua"),
            ),
            dump_card: Lua::new("dump_card", include_str!("lua/dump_card.lua")),
            dump_cards: Lua::new("dump_cards", include_str!("lua/dump_cards.lua")),
            dump_records: Lua::with_records("dump_records", include_str!("lua/dump_records.lua")),
        }
    }
}
