//! Export and import on Redis. An export walks the key space with SCAN (on
//! a cluster, every master in turn) twice: every hash (cards, contacts,
//! index entries), then the cards' records, so that every card comes out
//! before any card's record; each key found is read with its
//! companions in one step (a card with its history, a record with its time
//! left). SCAN guarantees every key present for the whole walk is returned
//! (possibly twice); keys written meanwhile may or may not be (docs/redis.md).

use futures_util::future::try_join_all;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisResult, Value};

use super::{errors, int, slot_masters, text, Conn, RedisStore};
use crate::domain::{Card, CardNumber, Contact, HistoryEntry};
use crate::store::dump::{cursor, split_cursor, PHASES};

/// The phase of the cards' records; every other record is read in phase 0.
const RECORDS: usize = 1;
use crate::store::{codec, DumpItem, DumpPage, Index, StoreError};

/// Keys a SCAN step examines, per record of a page: most phases match few
/// of the keys they pass (the contacts among all the cards), and each step
/// is a round trip. The keys found are then read a page at a time.
const SCAN_WIDTH: usize = 8;

/// Escapes the glob characters of SCAN's MATCH.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The hash tag of a key and what follows it.
fn tag(key: &str) -> Option<(&str, &str)> {
    let open = key.find('{')?;
    let close = key[open..].find('}')? + open;
    Some((&key[open + 1..close], &key[close + 1..]))
}

impl Conn {
    /// Where a scan goes: the node (single), or the first slot of each
    /// master, in the order of the masters' ids (stable between pages).
    async fn scan_nodes(&mut self) -> RedisResult<Vec<Option<u16>>> {
        match self {
            Conn::Single(_) => Ok(vec![None]),
            Conn::Cluster(c) => {
                let slots = c
                    .route_command(
                        redis::cmd("CLUSTER").arg("SLOTS").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await?;
                let mut masters = slot_masters(&slots).map_err(super::not_ready)?;
                masters.sort_by(|a, b| a.id.cmp(&b.id).then(a.start.cmp(&b.start)));
                masters.dedup_by(|a, b| a.id == b.id);
                Ok(masters.into_iter().map(|m| Some(m.start)).collect())
            }
        }
    }

    async fn scan(
        &mut self,
        node: Option<u16>,
        at: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(at)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .arg("TYPE")
            .arg("hash");
        let reply: Value = match (self, node) {
            (Conn::Cluster(c), Some(slot)) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                c.route_command(cmd.clone(), route).await?
            }
            (conn, _) => conn.query(&cmd).await?,
        };
        let bad = || {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected SCAN reply",
                format!("{reply:?}"),
            ))
        };
        let Value::Array(parts) = &reply else {
            return Err(bad());
        };
        let [next, keys] = parts.as_slice() else {
            return Err(bad());
        };
        let next = text(next)
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(bad)?;
        let Value::Array(keys) = keys else {
            return Err(bad());
        };
        Ok((next, keys.iter().filter_map(text).collect()))
    }
}

impl RedisStore {
    /// MATCH pattern of the keys of a dump phase, all hashes. Redis walks
    /// twice, not once per kind (each walk passes every key, which was most
    /// of an export's Redis time): cards, contacts and index entries first,
    /// told apart by their key, then the cards' record sets (`…:recs`).
    fn phase_pattern(&self, phase: usize) -> String {
        let p = glob_escape(self.keys.prefix());
        if phase == RECORDS {
            format!("{p}:card:*:recs")
        } else {
            format!("{p}:*")
        }
    }

    /// The dump phase (its index in `PHASES`) whose reader a hash key
    /// needs, by the kind its key names.
    fn kind_of(&self, key: &str) -> Option<usize> {
        let rest = key.strip_prefix(self.keys.prefix())?.strip_prefix(':')?;
        let (kind, _) = rest.split_once(":{")?;
        let name = match kind {
            "card" => "cards",
            "contact" => "contacts",
            other => other,
        };
        PHASES.iter().position(|p| *p == name && *p != "records")
    }

    pub(super) async fn dump(
        &self,
        at: Option<&str>,
        count: usize,
    ) -> Result<DumpPage, StoreError> {
        let bad_cursor = || errors::corrupt("", format!("bad dump cursor {at:?}"));
        let (phase, position) = split_cursor(at)
            .filter(|(phase, _)| *phase <= RECORDS)
            .ok_or_else(bad_cursor)?;
        let (node_at, scan_at) = match position.split_once('/') {
            None if position.is_empty() => (0, 0),
            Some((n, c)) => (
                n.parse::<usize>().map_err(|_| bad_cursor())?,
                c.parse::<u64>().map_err(|_| bad_cursor())?,
            ),
            None => return Err(bad_cursor()),
        };
        let pattern = self.phase_pattern(phase);
        let mut conn = self.conn();
        let walk = async {
            let nodes = conn.scan_nodes().await?;
            let Some(node) = nodes.get(node_at).copied() else {
                return Ok((nodes.len(), 0, Vec::new()));
            };
            let (next, keys) = conn
                .scan(node, scan_at, &pattern, count.max(1) * SCAN_WIDTH)
                .await?;
            Ok::<_, redis::RedisError>((nodes.len(), next, keys))
        };
        let (nodes, next, keys) = match tokio::time::timeout(self.timeout, walk).await {
            Err(_) => return Err(errors::read_timeout("dump", self.timeout_ms())),
            Ok(Err(e)) => return Err(errors::read("dump", e)),
            Ok(Ok(found)) => found,
        };
        if node_at >= nodes {
            return Err(errors::read(
                "dump",
                super::not_ready("the cluster's masters changed during the export".into()),
            ));
        }
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(count.max(1)) {
            items.extend(self.fetch(phase, chunk).await?);
        }
        let next = if next != 0 {
            Some(cursor(phase, &format!("{node_at}/{next}")))
        } else if node_at + 1 < nodes {
            Some(cursor(phase, &format!("{}/0", node_at + 1)))
        } else if phase < RECORDS {
            Some(cursor(RECORDS, ""))
        } else {
            None
        };
        Ok(DumpPage { items, next })
    }

    /// Reads the records behind the keys a scan found; a key gone meanwhile
    /// is left out.
    async fn fetch(&self, phase: usize, keys: &[String]) -> Result<Vec<DumpItem>, StoreError> {
        if phase == RECORDS {
            let reads = keys.iter().map(|key| self.fetch_records(key));
            return Ok(try_join_all(reads).await?.into_iter().flatten().collect());
        }
        let mut cards = Vec::new();
        let mut others = Vec::new();
        for key in keys {
            match self.kind_of(key) {
                Some(0) => cards.push(key.clone()),
                Some(kind) => others.push((kind, key.as_str())),
                None => {}
            }
        }
        // On one node a page of cards is one script call: one command
        // instead of hundreds (a cluster would refuse keys of many slots).
        let mut items = if !self.is_cluster() && cards.len() > 1 {
            self.fetch_cards(&cards).await?
        } else {
            let reads = cards.iter().map(|key| self.fetch_one(0, key));
            try_join_all(reads).await?.into_iter().flatten().collect()
        };
        let reads = others.iter().map(|(kind, key)| self.fetch_one(*kind, key));
        items.extend(try_join_all(reads).await?.into_iter().flatten());
        Ok(items)
    }

    async fn fetch_cards(&self, keys: &[String]) -> Result<Vec<DumpItem>, StoreError> {
        let mut ids = Vec::with_capacity(keys.len());
        let mut names = Vec::with_capacity(keys.len() * 2);
        for key in keys {
            if let Some((id, "")) = tag(key) {
                ids.push(id);
                names.push(key.clone());
                names.push(self.keys.history(id));
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let reply = self.script(&self.scripts.dump_cards, &refs, &[]).await?;
        let Value::Array(cards) = reply else {
            return Err(errors::corrupt("", "unexpected dump_cards reply"));
        };
        let mut items = Vec::with_capacity(cards.len());
        for (card, id) in cards.iter().zip(ids) {
            let Value::Array(parts) = card else {
                return Err(errors::corrupt(id, "unexpected dump_cards reply"));
            };
            if let Some(item) = card_item(&self.keys.card(id), &self.keys.history(id), parts)? {
                items.push(item);
            }
        }
        Ok(items)
    }

    async fn fetch_one(&self, phase: usize, key: &str) -> Result<Option<DumpItem>, StoreError> {
        let Some((id, rest)) = tag(key) else {
            return Ok(None);
        };
        match PHASES[phase] {
            "cards" => {
                if !rest.is_empty() {
                    return Ok(None);
                }
                let history = self.keys.history(id);
                let reply = self
                    .script(&self.scripts.dump_card, &[key, &history], &[])
                    .await?;
                let Value::Array(parts) = reply else {
                    return Err(errors::corrupt(key, "unexpected dump_card reply"));
                };
                card_item(key, &history, &parts)
            }
            "contacts" => {
                if !rest.is_empty() {
                    return Ok(None);
                }
                let mut cmd = redis::cmd("HGET");
                cmd.arg(key).arg("d");
                let d: Option<Vec<u8>> = self.read("dump_contact", key, cmd).await?;
                // A fenced record that never held a contact is no contact.
                d.map(|d| codec::decode::<Contact>(key, &d).map(DumpItem::Contact))
                    .transpose()
            }
            name => {
                let index = Index::from_name(name)
                    .ok_or_else(|| errors::corrupt(key, "unknown dump phase"))?;
                if !rest.is_empty() {
                    return Ok(None);
                }
                let mut cmd = redis::cmd("HGET");
                cmd.arg(key).arg("owner");
                let owner: Option<String> = self.read("dump_index", key, cmd).await?;
                Ok(owner.map(|owner| DumpItem::Index {
                    index,
                    key: id.to_owned(),
                    owner,
                }))
            }
        }
    }

    /// The live records of a card's record set (a key of the records
    /// phase).
    async fn fetch_records(&self, key: &str) -> Result<Vec<DumpItem>, StoreError> {
        let Some((id, ":recs")) = tag(key) else {
            return Ok(Vec::new());
        };
        let not_text = || errors::corrupt(key, "a record that is not text");
        let reply = self.script(&self.scripts.dump_records, &[key], &[]).await?;
        let Value::Array(parts) = reply else {
            return Err(errors::corrupt(key, "unexpected dump_records reply"));
        };
        let mut items = Vec::with_capacity(parts.len() / 3);
        for record in parts.chunks(3) {
            let [name, value, ttl] = record else {
                return Err(errors::corrupt(key, "unexpected dump_records reply"));
            };
            items.push(DumpItem::Record {
                number: CardNumber::from_trusted(id.to_owned()),
                key: text(name).ok_or_else(not_text)?,
                value: text(value).ok_or_else(not_text)?,
                ttl_ms: int(ttl).filter(|t| *t >= 0),
            });
        }
        Ok(items)
    }

    pub(super) async fn restore_one_card(
        &self,
        card: &Card,
        history: &[HistoryEntry],
    ) -> Result<bool, StoreError> {
        let number = card.number.as_str();
        let key = self.keys.card(number);
        let history_key = self.keys.history(number);
        let mut args = vec![codec::encode(card)?];
        for entry in history {
            args.push(codec::encode(entry)?);
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let reply = self
            .script(&self.scripts.restore_card, &[&key, &history_key], &args)
            .await?;
        super::flag(&key, &reply)
    }

    pub(super) async fn restore_one_record(
        &self,
        number: &CardNumber,
        record: &str,
        value: &str,
        ttl_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let key = self.keys.card(number.as_str());
        let set = self.keys.card_records(number.as_str());
        let ms = ttl_ms.map(|ms| ms.max(1).to_string()).unwrap_or_default();
        let reply = self
            .script(
                &self.scripts.restore_record,
                &[&key, &set],
                &[record.as_bytes(), value.as_bytes(), ms.as_bytes()],
            )
            .await?;
        super::flag(&set, &reply)
    }
}

/// A card from its record and history entries as a dump script returns them.
fn card_item(key: &str, history: &str, parts: &[Value]) -> Result<Option<DumpItem>, StoreError> {
    let Some((card, entries)) = parts.split_first() else {
        return Ok(None);
    };
    let card: Card = codec::decode(key, bulk(key, card)?)?;
    let history = entries
        .iter()
        .map(|e| codec::decode::<HistoryEntry>(history, bulk(history, e)?))
        .collect::<Result<_, _>>()?;
    Ok(Some(DumpItem::Card { card, history }))
}

fn bulk<'a>(key: &str, v: &'a Value) -> Result<&'a [u8], StoreError> {
    match v {
        Value::BulkString(b) => Ok(b),
        other => Err(errors::corrupt(key, format!("unexpected value {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{glob_escape, tag};

    #[test]
    fn tags_and_globs() {
        assert_eq!(tag("p:card:{42}:recs"), Some(("42", ":recs")));
        assert_eq!(tag("p:card:{42}"), Some(("42", "")));
        assert_eq!(glob_escape("a*b[c]"), "a\\*b\\[c\\]");
    }
}
