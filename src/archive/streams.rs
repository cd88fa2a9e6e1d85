//! The archive's side of the change streams (docs/events.md): one consumer
//! group over the 16,384 per-slot streams, read with `XREADGROUP`, stuck
//! entries of a dead consumer taken over with `XAUTOCLAIM`, and an entry
//! acknowledged (`XACK`) and deleted (`XDEL`) only after the archive has
//! committed it. Generic commands only: every stream key is its own slot,
//! so each command names one key and goes to that slot's master, on one
//! node or a cluster alike; the multiplexed connection pipelines them.

use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, Value};

use crate::domain::{Card, HistoryEntry};
use crate::store::codec;
use crate::store::events::{ChangeEvent, EventKind, EVENT_FORMAT_VERSION};
use crate::store::redis::sentinel::{MasterAddr, SentinelSettings, Sentinels};
use crate::store::redis::{slots, Keys, RedisAccess};

/// Commands in flight at once during a sweep over the streams.
const CONCURRENCY: usize = 512;
/// Streams named in one XREADGROUP on a single node (a cluster refuses a
/// command whose keys are in different slots, so there it is one each).
const KEYS_PER_READ: usize = 512;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// An event read from a stream, with where it came from (to acknowledge
/// it there).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub stream: String,
    pub entry_id: String,
    pub event: ChangeEvent,
}

impl Delivered {
    /// When Redis appended it (ms since the epoch): the first part of the
    /// stream entry's id.
    pub fn appended_ms(&self) -> Option<i64> {
        self.entry_id.split('-').next()?.parse().ok()
    }
}

pub struct Streams {
    /// Replaced when Sentinel names another master (`follow_master`).
    conn: parking_lot::Mutex<Conn>,
    /// Under Sentinel: who names the master, and the one `conn` leads to.
    sentinel: Option<(Sentinels, parking_lot::Mutex<MasterAddr>)>,
    names: Keys,
    keys: Vec<String>,
    group: String,
    consumer: String,
    timeout: Duration,
}

impl Streams {
    pub async fn connect(
        urls: &[String],
        access: &RedisAccess,
        prefix: &str,
        group: &str,
        consumer: &str,
        timeout: Duration,
    ) -> Result<Streams, RedisError> {
        let conn = match urls {
            [url] => {
                let client = access.client(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                Conn::Single(ConnectionManager::new_with_config(client, config).await?)
            }
            seeds => Conn::Cluster(
                access
                    .cluster(seeds)?
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
        };
        Ok(Self::new(conn, prefix, group, consumer, timeout))
    }

    fn new(conn: Conn, prefix: &str, group: &str, consumer: &str, timeout: Duration) -> Streams {
        let names = Keys::new(prefix);
        Streams {
            conn: parking_lot::Mutex::new(conn),
            sentinel: None,
            keys: (0..slots::SLOTS as u16)
                .map(|s| names.events_of_slot(s))
                .collect(),
            names,
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            timeout,
        }
    }

    /// Connects to the master the sentinels name (`store.sentinel`).
    pub async fn connect_via_sentinel(
        sentinel: SentinelSettings,
        prefix: &str,
        group: &str,
        consumer: &str,
        timeout: Duration,
    ) -> Result<Streams, RedisError> {
        let sentinels = Sentinels::new(sentinel)?;
        let addr = sentinels.ask().await?;
        let conn = Self::to_master(&sentinels, &addr, timeout).await?;
        let mut streams = Self::new(conn, prefix, group, consumer, timeout);
        streams.sentinel = Some((sentinels, parking_lot::Mutex::new(addr)));
        Ok(streams)
    }

    async fn to_master(
        sentinels: &Sentinels,
        addr: &MasterAddr,
        timeout: Duration,
    ) -> Result<Conn, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let client = sentinels.master_client(addr)?;
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// After a failed read: under Sentinel, asks which node is the master
    /// now and moves there if it changed (a failover). Elsewhere nothing:
    /// the connections reconnect by themselves.
    pub async fn follow_master(&self) {
        let Some((sentinels, current)) = &self.sentinel else {
            return;
        };
        let addr = match sentinels.ask().await {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(error = %e, "archive: Sentinel names no master yet");
                return;
            }
        };
        if *current.lock() == addr {
            return;
        }
        match Self::to_master(sentinels, &addr, self.timeout).await {
            Ok(conn) => {
                *self.conn.lock() = conn;
                tracing::warn!(master = %addr, "archive: the master moved (Sentinel); reading from the new one");
                *current.lock() = addr;
            }
            Err(e) => {
                tracing::warn!(master = %addr, error = %e, "archive: cannot connect to the new master yet")
            }
        }
    }

    async fn run<T: FromRedisValue>(&self, cmd: Cmd) -> RedisResult<T> {
        let mut conn = self.conn.lock().clone();
        match tokio::time::timeout(self.timeout, conn.query::<T>(&cmd)).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "archive: Redis command timed out",
            ))),
        }
    }

    /// The store's key schema.
    pub fn keys(&self) -> &Keys {
        &self.names
    }

    /// Runs a Lua script on the keys' slot: EVALSHA, and EVAL when that
    /// node does not know it yet.
    pub async fn eval<T: FromRedisValue>(
        &self,
        code: &str,
        keys: &[&str],
        args: &[u64],
    ) -> RedisResult<T> {
        let script = redis::Script::new(code);
        let build = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
            cmd
        };
        match self.run::<T>(build("EVALSHA", script.get_hash())).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.run::<T>(build("EVAL", code)).await
            }
            other => other,
        }
    }

    /// Creates the group on every stream (and the stream, where none is
    /// yet), from the stream's start: events written before the archive
    /// first ran are archived too. An existing group is kept as it is.
    pub async fn create_groups(&self) -> RedisResult<()> {
        for chunk in self.keys.chunks(CONCURRENCY) {
            let results = join_all(chunk.iter().map(|key| self.create_group(key))).await;
            for r in results {
                r?;
            }
        }
        Ok(())
    }

    async fn create_group(&self, key: &str) -> RedisResult<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        match self.run::<Value>(cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One sweep over the streams from `start` (a stream index), taking at
    /// most `per_stream` entries from each, and stopping once `max` events
    /// are in hand. `pending`: this consumer's own unacknowledged entries
    /// (after a restart) instead of new ones. Returns the events and the
    /// index to start the next sweep at.
    pub async fn read(
        &self,
        start: usize,
        per_stream: usize,
        max: usize,
        pending: bool,
    ) -> RedisResult<(Vec<Delivered>, usize)> {
        let single = matches!(*self.conn.lock(), Conn::Single(_));
        if single {
            return self.read_many(start, per_stream, max, pending).await;
        }
        let mut out = Vec::new();
        let n = self.keys.len();
        let mut done = 0;
        while done < n && out.len() < max {
            let take = CONCURRENCY.min(n - done);
            let batch: Vec<&String> = (done..done + take)
                .map(|i| &self.keys[(start + i) % n])
                .collect();
            let replies = join_all(
                batch
                    .iter()
                    .map(|key| self.read_one(key, per_stream, pending)),
            )
            .await;
            for reply in replies {
                out.extend(parse_entries(&reply?)?);
            }
            done += take;
        }
        Ok((out, (start + done) % n))
    }

    /// `read` on a single node: many streams per XREADGROUP, so that a
    /// sweep over all 16,384 is a few dozen commands, and Redis answers
    /// only for the streams that have something.
    async fn read_many(
        &self,
        start: usize,
        per_stream: usize,
        max: usize,
        pending: bool,
    ) -> RedisResult<(Vec<Delivered>, usize)> {
        let mut out = Vec::new();
        let n = self.keys.len();
        let mut done = 0;
        while done < n && out.len() < max {
            let take = KEYS_PER_READ.min(n - done);
            let batch: Vec<&String> = (done..done + take)
                .map(|i| &self.keys[(start + i) % n])
                .collect();
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(per_stream)
                .arg("STREAMS")
                .arg(&batch)
                .arg(vec![if pending { "0" } else { ">" }; batch.len()]);
            match self.run::<Value>(cmd).await {
                Ok(reply) => out.extend(parse_entries(&reply)?),
                // A stream (or its group) is gone: one at a time, which
                // creates it again.
                Err(e) if e.code() == Some("NOGROUP") => {
                    for key in batch {
                        let reply = self.read_one(key, per_stream, pending).await?;
                        out.extend(parse_entries(&reply)?);
                    }
                }
                Err(e) => return Err(e),
            }
            done += take;
        }
        Ok((out, (start + done) % n))
    }

    async fn read_one(&self, key: &str, count: usize, pending: bool) -> RedisResult<Value> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(key)
            .arg(if pending { "0" } else { ">" });
        match self.run::<Value>(cmd).await {
            // The stream (or its group) is gone — Redis lost its data, or
            // someone deleted the key: create it again and carry on.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.create_group(key).await?;
                Ok(Value::Nil)
            }
            other => other,
        }
    }

    /// Takes over entries that another consumer has held unacknowledged
    /// for at least `min_idle` (it died, or hangs), up to `per_stream` per
    /// stream.
    pub async fn claim_stuck(
        &self,
        min_idle: Duration,
        per_stream: usize,
    ) -> RedisResult<Vec<Delivered>> {
        let mut out = Vec::new();
        for chunk in self.keys.chunks(CONCURRENCY) {
            let replies = join_all(chunk.iter().map(|key| {
                let mut cmd = redis::cmd("XAUTOCLAIM");
                cmd.arg(key)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(min_idle.as_millis() as u64)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(per_stream);
                self.run::<Value>(cmd)
            }))
            .await;
            for (key, reply) in chunk.iter().zip(replies) {
                let reply = match reply {
                    Err(e) if e.code() == Some("NOGROUP") => continue,
                    other => other?,
                };
                // [next cursor, [entries], [deleted ids]]
                if let Value::Array(parts) = &reply {
                    if let Some(entries) = parts.get(1) {
                        out.extend(parse_stream_entries(key, entries)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges archived events and deletes them from their streams
    /// (with `delete`), grouped by stream: one XACK and one XDEL each.
    pub async fn acknowledge(&self, done: &[Delivered], delete: bool) -> RedisResult<()> {
        let mut by_stream: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for d in done {
            by_stream
                .entry(d.stream.as_str())
                .or_default()
                .push(d.entry_id.as_str());
        }
        let streams: Vec<(&str, Vec<&str>)> = by_stream.into_iter().collect();
        for chunk in streams.chunks(CONCURRENCY) {
            let results = join_all(chunk.iter().map(|(key, ids)| async move {
                let mut ack = redis::cmd("XACK");
                ack.arg(*key).arg(&self.group).arg(ids);
                self.run::<Value>(ack).await?;
                if delete {
                    let mut del = redis::cmd("XDEL");
                    del.arg(*key).arg(ids);
                    self.run::<Value>(del).await?;
                }
                Ok::<(), RedisError>(())
            }))
            .await;
            for r in results {
                r?;
            }
        }
        Ok(())
    }
}

fn malformed(key: &str, why: impl Into<String>) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "malformed change stream entry",
        format!("{key}: {}", why.into()),
    ))
}

/// An XREADGROUP reply: nil, or `[[key, [entries]], ...]` (RESP2), or a
/// map `{key: [entries]}` (RESP3).
fn parse_entries(reply: &Value) -> RedisResult<Vec<Delivered>> {
    let mut out = Vec::new();
    match reply {
        Value::Nil => {}
        Value::Array(streams) => {
            for s in streams {
                match s {
                    Value::Array(pair) if pair.len() == 2 => {
                        let (key, entries) = (&pair[0], &pair[1]);
                        let key = String::from_redis_value(key.clone())?;
                        out.extend(parse_stream_entries(&key, entries)?)
                    }
                    _ => return Err(malformed("XREADGROUP", format!("{s:?}"))),
                }
            }
        }
        Value::Map(streams) => {
            for (key, entries) in streams {
                let key = String::from_redis_value(key.clone())?;
                out.extend(parse_stream_entries(&key, entries)?);
            }
        }
        other => return Err(malformed("XREADGROUP", format!("{other:?}"))),
    }
    Ok(out)
}

/// A stream entry carries the record in the store's compact encoding, as
/// small as the history list keeps it (docs/events.md); consumers of
/// `ChangeEvent` (the archive's PostgreSQL rows) get its JSON.
fn event_json(kind: EventKind, compact: &[u8]) -> Result<String, String> {
    let json = match kind {
        EventKind::History => serde_json::to_string(
            &codec::decode::<HistoryEntry>("e", compact).map_err(|e| e.to_string())?,
        ),
        EventKind::Loaded => {
            serde_json::to_string(&codec::decode::<Card>("e", compact).map_err(|e| e.to_string())?)
        }
    };
    json.map_err(|e| e.to_string())
}

/// `[[id, [field, value, ...]], ...]`; an entry deleted while pending
/// comes back with nil fields and is skipped (nothing left to archive).
fn parse_stream_entries(key: &str, entries: &Value) -> RedisResult<Vec<Delivered>> {
    let Value::Array(entries) = entries else {
        return Err(malformed(key, "entries are not a list"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(malformed(key, "an entry is not a list"));
        };
        let [id, fields] = parts.as_slice() else {
            return Err(malformed(key, "an entry is not [id, fields]"));
        };
        let entry_id = String::from_redis_value(id.clone())?;
        let fields = match fields {
            Value::Nil => continue,
            Value::Array(f) => f,
            _ => return Err(malformed(key, "fields are not a list")),
        };
        let mut get = std::collections::HashMap::new();
        for pair in fields.chunks(2) {
            if let [k, v] = pair {
                get.insert(
                    String::from_redis_value(k.clone())?,
                    Vec::<u8>::from_redis_value(v.clone())?,
                );
            }
        }
        let bytes = |name: &str| {
            get.get(name)
                .ok_or_else(|| malformed(key, format!("an entry without {name}")))
        };
        let field = |name: &str| {
            String::from_utf8(bytes(name)?.clone())
                .map_err(|_| malformed(key, format!("{name} is not UTF-8")))
        };
        let version: u32 = field("v")?
            .parse()
            .map_err(|_| malformed(key, "version not a number"))?;
        if version != EVENT_FORMAT_VERSION {
            return Err(malformed(
                key,
                format!("entry {entry_id}: event format {version} is not known here"),
            ));
        }
        let kind = EventKind::parse(&field("kind")?)
            .ok_or_else(|| malformed(key, format!("entry {entry_id}: unknown kind")))?;
        let seq = match get.contains_key("seq") {
            true => Some(
                field("seq")?
                    .parse::<u64>()
                    .map_err(|_| malformed(key, "seq not a number"))?,
            ),
            false => None,
        };
        let body = event_json(kind, bytes("e")?)
            .map_err(|e| malformed(key, format!("entry {entry_id}: {e}")))?;
        out.push(Delivered {
            stream: key.to_owned(),
            entry_id,
            event: ChangeEvent {
                id: field("id")?,
                card: field("card")?,
                kind,
                seq,
                body,
            },
        });
    }
    Ok(out)
}
