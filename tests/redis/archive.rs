//! `loyalty archive` (the real binary, as a child process) moves the change
//! streams into a real PostgreSQL: every event arrives once per event id,
//! across `kill -9` of the archiver in the middle of its batches and of
//! redis-server (AOF `appendfsync always`) under it, and a restarted
//! archiver under another consumer name takes over what the killed one left
//! pending (`XAUTOCLAIM`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use loyalty::archive::history_store::WithArchive;
use loyalty::domain::{
    Card, CardNumber, CardStatus, CardType, Category, HistoryEntry, Operation, Role,
};
use loyalty::store::events::{history_event_id, loaded_event_id, EventLog};
use loyalty::store::prelude::*;
use loyalty::store::redis::RedisStore;
use loyalty::store::Cas;

use crate::postgres_server::PostgresServer;
use crate::redis_server::{free_port, RedisServer};

const PREFIX: &str = "arch";
const CARDS: u64 = 3000;
const UPDATES: u64 = 3;

/// The real archiver under a watchdog shell that kills it if this test
/// process dies.
pub(crate) struct Archiver {
    watchdog: Child,
    pidfile: PathBuf,
}

impl Archiver {
    pub(crate) fn start(config: &Path, dir: &Path, n: u32) -> Archiver {
        let pidfile = dir.join(format!("archive-{n}.pid"));
        let script = format!(
            "'{bin}' archive --config '{config}' >>'{log}' 2>&1 & s=$!; echo $s >'{pidfile}'; \
             while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.2; done; \
             kill -9 $s 2>/dev/null",
            bin = env!("CARGO_BIN_EXE_loyalty"),
            config = config.display(),
            log = dir.join("archive.log").display(),
            pidfile = pidfile.display(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("start loyalty archive");
        Archiver { watchdog, pidfile }
    }

    pub(crate) fn kill9(&mut self) {
        for _ in 0..500 {
            if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
                let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
                let _ = self.watchdog.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the archiver never wrote its pid");
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        if self.watchdog.try_wait().ok().flatten().is_none() {
            self.kill9();
        }
    }
}

fn entry(i: u64) -> HistoryEntry {
    HistoryEntry {
        at: time::macros::datetime!(2026-01-02 03:04:05.678 UTC),
        login: format!("user{i}"),
        // Fixed, so that an entry can be compared after its round trip.
        role: Role::Administrator,
        operation: Operation::Issue,
        from: CardStatus::New,
        to: CardStatus::Issued,
        reason_code: None,
        reason_name: None,
        detail: None,
        bonus: None,
    }
}

/// Loads the cards and changes each a few times; returns every event id.
async fn make_events(store: &RedisStore) -> BTreeSet<String> {
    let cards: Vec<Card> = (0..CARDS)
        .map(|i| {
            Card::new(
                CardNumber::from_trusted(format!("5{i:012}")),
                Category::Plastic,
                CardType::ALL[0],
            )
        })
        .collect();
    store.insert_cards(&cards).await.expect("inserts");
    let mut ids = BTreeSet::new();
    for chunk in cards.chunks(256) {
        try_join_all(chunk.iter().map(|c| async move {
            for v in 1..=UPDATES {
                match store.update_card(c, v, &entry(v)).await? {
                    Cas::Applied => {}
                    Cas::Conflict => panic!("no one else writes"),
                }
            }
            Ok::<(), loyalty::store::StoreError>(())
        }))
        .await
        .expect("updates");
        for c in chunk {
            ids.insert(loaded_event_id(c.number.as_str()));
            for seq in 0..UPDATES {
                ids.insert(history_event_id(c.number.as_str(), seq));
            }
        }
    }
    ids
}

pub(crate) async fn pg(url: &str) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                return client;
            }
            Err(e) if Instant::now() > deadline => panic!("PostgreSQL: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn archived(client: &tokio_postgres::Client) -> i64 {
    match client
        .query_one("SELECT count(*) FROM loyalty_events", &[])
        .await
    {
        Ok(row) => row.get(0),
        // The archiver has not created its table yet.
        Err(_) => 0,
    }
}

async fn wait_for(client: &tokio_postgres::Client, at_least: i64, dir: &Path) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = archived(client).await;
        if n >= at_least {
            return n;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("archive.log")).unwrap_or_default();
            panic!("only {n} of {at_least} events archived; archiver log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and PostgreSQL (scripts/test.sh runs it: --include-ignored)"]
async fn every_event_reaches_the_archive_once_across_kill_9_of_the_archiver() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut redis = crate::support::start_aof_always(&dir.path().join("redis"));
    let postgres = PostgresServer::start(&dir.path().join("pg"), free_port(false));
    let store = crate::support::redis_store(&redis.url(), PREFIX)
        .await
        .with_event_log(EventLog { max_len: 1_000_000 });
    let expected = make_events(&store).await;
    let total = expected.len() as i64;

    let config = dir.path().join("archive.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{PREFIX}\"\n\
             [archive]\npostgres_url = \"{pg}\"\nbatch_max = 300\nper_stream = 2\n\
             poll_idle_ms = 20\nclaim_min_idle_ms = 500\n\
             [log]\nlevel = \"info\"\n[demo]\ndata_file = \"\"\n",
            url = redis.url(),
            pg = postgres.url(),
        ),
    )
    .expect("write the config");
    let client = pg(&postgres.url()).await;

    // Three archivers killed -9 while they work (each one a new consumer
    // name: the next must claim what the last left pending), then one that
    // finishes.
    let mut seen = 0;
    for n in 0..3 {
        let mut archiver = Archiver::start(&config, dir.path(), n);
        seen = wait_for(&client, seen + 1000, dir.path()).await;
        archiver.kill9();
    }
    assert!(seen < total, "the archivers were killed before the end");
    // Redis killed -9 under a working archiver, and back on its AOF: the
    // archiver reconnects; a lost acknowledgement only repeats a batch.
    let _last = Archiver::start(&config, dir.path(), 3);
    seen = wait_for(&client, seen + 1000, dir.path()).await;
    assert!(seen < total, "Redis was killed before the end");
    redis.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    wait_for(&client, total, dir.path()).await;

    // Exactly the expected events, each once (the id is the primary key;
    // the count also shows nothing else came in).
    let rows = client
        .query("SELECT id FROM loyalty_events", &[])
        .await
        .expect("reads");
    let ids: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(rows.len(), ids.len());
    assert_eq!(ids, expected);
    // And each with its history entry, byte for byte as Redis keeps it.
    let row = client
        .query_one(
            "SELECT body, seq, kind FROM loyalty_events WHERE id = $1",
            &[&history_event_id("5000000000007", 2)],
        )
        .await
        .expect("reads");
    let body: String = row.get(0);
    let seq: i64 = row.get(1);
    let kind: String = row.get(2);
    assert_eq!((seq, kind.as_str()), (2, "history"));
    // The test's own connections died with Redis: ping re-establishes them.
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = store
        .card_history(&CardNumber::from_trusted("5000000000007".into()), None, 1)
        .await
        .expect("reads");
    assert_eq!(
        serde_json::from_str::<HistoryEntry>(&body).ok(),
        stored.entries.first().map(|(_, e)| e.clone())
    );

    // Nothing stays pending or in the streams once all is archived.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let card = format!("5{:012}", 7);
        let stream = store.keys().events(&card);
        let len = redis.command(&format!("XLEN {stream}")).unwrap_or_default();
        if len.starts_with(":0") {
            break;
        }
        assert!(Instant::now() < deadline, "the stream still holds {len}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hot window: the archiver takes a card's archived entries off its
/// list in Redis down to `history.hot_entries`, and a history read pages on
/// from Redis into the archive with the same sequence numbers and cursors:
/// every entry once, newest first. Without the archive the page says where
/// Redis' entries end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and PostgreSQL (scripts/test.sh runs it: --include-ignored)"]
async fn history_pages_from_redis_into_the_archive_every_entry_once_in_order() {
    const ENTRIES: u64 = 250;
    const HOT: u64 = 40;
    let dir = tempfile::tempdir().expect("a temp dir");
    let redis = RedisServer::start(&dir.path().join("redis"), free_port(false), &[], None);
    let postgres = PostgresServer::start(&dir.path().join("pg"), free_port(false));
    let prefix = "hot";
    let store = Arc::new(
        crate::support::redis_store(&redis.url(), prefix)
            .await
            .with_event_log(EventLog { max_len: 100_000 }),
    );
    let number = CardNumber::from_trusted("6000000000001".into());
    let card = Card::new(number.clone(), Category::Plastic, CardType::ALL[0]);
    store
        .insert_cards(std::slice::from_ref(&card))
        .await
        .expect("inserts");
    for v in 1..=ENTRIES {
        assert_eq!(
            store.update_card(&card, v, &entry(v - 1)).await.ok(),
            Some(Cas::Applied)
        );
    }

    let config = dir.path().join("archive.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n\
             [archive]\npostgres_url = \"{pg}\"\npoll_idle_ms = 20\n\
             [history]\nhot_entries = {HOT}\n\
             [log]\nlevel = \"info\"\n[demo]\ndata_file = \"\"\n",
            url = redis.url(),
            pg = postgres.url(),
        ),
    )
    .expect("write the config");
    let archiver = Archiver::start(&config, dir.path(), 0);
    let list = store.keys().history(number.as_str());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !redis
        .command(&format!("LLEN {list}"))
        .is_some_and(|r| r.starts_with(&format!(":{HOT}\r")))
    {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("archive.log")).unwrap_or_default();
            panic!("the history was not trimmed to {HOT}; archiver log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(archiver);

    // Redis alone: its newest entries, then the end of what it has.
    let page = store.card_history(&number, None, 100).await.expect("reads");
    let seqs: Vec<u64> = page.entries.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (ENTRIES - HOT..ENTRIES).rev().collect::<Vec<_>>());
    assert_eq!((page.next, page.archived_below), (None, ENTRIES - HOT));

    // With the archive: every entry once, in order, whatever the page size.
    let with = WithArchive::new(store.clone(), postgres.url());
    for limit in [1, 7, 40, 41, 100, 1000] {
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = with
                .card_history(&number, cursor, limit)
                .await
                .expect("reads");
            assert!(page.entries.len() <= limit);
            assert_eq!(page.archived_below, 0, "everything is reachable");
            for (seq, e) in &page.entries {
                assert_eq!(e, &entry(*seq), "entry {seq}");
                seen.push(*seq);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            (0..ENTRIES).rev().collect::<Vec<_>>(),
            "page size {limit}"
        );
    }

    // A change after the trim continues the numbering.
    assert_eq!(
        store
            .update_card(&card, ENTRIES + 1, &entry(ENTRIES))
            .await
            .ok(),
        Some(Cas::Applied)
    );
    let newest = store.card_history(&number, None, 1).await.expect("reads");
    assert_eq!(newest.entries.first().map(|(s, _)| *s), Some(ENTRIES));
}
