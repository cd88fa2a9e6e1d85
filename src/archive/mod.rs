//! `loyalty archive`: moves the change streams (docs/events.md) into
//! PostgreSQL, at least once, so that nothing must stay in Redis forever
//! (docs/adr/0009-change-stream-and-archive.md).
//!
//! One loop: read a batch from the streams with the consumer group, insert
//! it in one transaction (idempotent by event id), and only after the
//! commit acknowledge and delete it in Redis. A crash anywhere repeats at
//! most the last batch, which the primary key absorbs. Several archivers
//! may run: the consumer group shares the streams out, and each takes over
//! what a dead one left pending once it has been idle `claim_min_idle_ms`.

pub mod history_store;
pub mod postgres;
pub mod streams;
pub mod trim;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Settings;
use crate::store::redis::RedisAccess;
use postgres::Archive;
use streams::{Delivered, Streams};

/// The consumer group of the archive in every stream.
pub const GROUP: &str = "archive";

/// Waits after a failure before trying again (Redis or PostgreSQL away).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs a startup step until it succeeds, waiting `RETRY_AFTER` between
/// attempts; an error `fatal` says cannot pass by waiting ends the run.
async fn until_done<T, E, Fut>(
    what: &str,
    mut step: impl FnMut() -> Fut,
    fatal: impl Fn(&E) -> bool,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if fatal(&e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
            Err(e) => {
                tracing::warn!(error = %e, step = what, "archive: a startup step failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Runs until the process is stopped.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let a = &settings.archive;
    anyhow::ensure!(
        !a.postgres_url.is_empty(),
        "archive.postgres_url is not set: there is nowhere to archive to"
    );
    anyhow::ensure!(
        settings.store.backend == crate::config::StoreBackend::Redis,
        "the archive reads the Redis change streams: store.backend must be \"redis\""
    );
    if settings.events.stream_max_len == 0 {
        // The servers write the events, with their own configuration; the
        // archive cannot see it, but this one is usually the same file.
        tracing::warn!("events.stream_max_len = 0 here: servers configured so write no events, and the archive has nothing to read (set it above 0 on the servers)");
    }
    let consumer = if a.consumer.is_empty() {
        format!(
            "{}-{}",
            hostname().unwrap_or_else(|| "archive".into()),
            std::process::id()
        )
    } else {
        a.consumer.clone()
    };
    // Only a malformed address or a refused TLS certificate or password
    // ends the archiver at start; Redis or PostgreSQL being down or
    // restarting is waited out, as in the loop.
    a.postgres_url
        .parse::<tokio_postgres::Config>()
        .context("archive.postgres_url")?;
    let access = RedisAccess::from_settings(&settings.store).context("store settings")?;
    let timeout = Duration::from_millis(settings.store.command_timeout_ms.max(1000));
    let sentinel = crate::store::redis::sentinel::SentinelSettings::from_store(&settings.store)
        .context("store.sentinel settings")?;
    let streams = until_done(
        "connecting to Redis",
        || {
            let sentinel = sentinel.clone();
            let (access, consumer) = (&access, &consumer);
            async move {
                match sentinel {
                    Some(s) => {
                        Streams::connect_via_sentinel(
                            s,
                            &settings.store.key_prefix,
                            GROUP,
                            consumer,
                            timeout,
                        )
                        .await
                    }
                    None => {
                        Streams::connect(
                            &settings.store.url,
                            access,
                            &settings.store.key_prefix,
                            GROUP,
                            consumer,
                            timeout,
                        )
                        .await
                    }
                }
            }
        },
        crate::store::redis::access::is_misconfiguration,
    )
    .await?;
    until_done(
        "creating the archive's consumer groups",
        || streams.create_groups(),
        |_| false,
    )
    .await?;
    let mut archive = until_done(
        "connecting to PostgreSQL (archive.postgres_url)",
        || Archive::connect(&a.postgres_url),
        |_| false,
    )
    .await?;
    tracing::info!(consumer = %consumer, "archiving the change streams");

    let mut lag = Lag::default();
    let mut cursor = 0;
    // First what this consumer name left unacknowledged (a restart under
    // the same `archive.consumer`), then new events.
    let mut pending = true;
    let claim_every = Duration::from_millis(a.claim_min_idle_ms.max(100));
    let mut last_claim = Instant::now();
    loop {
        if archive.is_closed() {
            archive = match Archive::connect(&a.postgres_url).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "archive: PostgreSQL unavailable; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            };
        }
        let mut batch = match streams
            .read(cursor, a.per_stream, a.batch_max, pending)
            .await
        {
            Ok((batch, next)) => {
                cursor = next;
                if pending && next == 0 {
                    pending = false;
                }
                batch
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive: reading the streams failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
                // A failover (Sentinel) moves the master elsewhere.
                streams.follow_master().await;
                continue;
            }
        };
        if last_claim.elapsed() >= claim_every {
            last_claim = Instant::now();
            match streams
                .claim_stuck(Duration::from_millis(a.claim_min_idle_ms), a.per_stream)
                .await
            {
                Ok(claimed) => {
                    if !claimed.is_empty() {
                        tracing::info!(
                            events = claimed.len(),
                            "archive: took over events another consumer left pending"
                        );
                    }
                    batch.extend(claimed);
                }
                Err(e) => tracing::warn!(error = %e, "archive: XAUTOCLAIM failed"),
            }
        }
        if batch.is_empty() {
            if !pending {
                tokio::time::sleep(Duration::from_millis(a.poll_idle_ms)).await;
            }
            continue;
        }
        if let Err(e) = archive.store(&batch).await {
            // Not acknowledged: the same events come again (this consumer's
            // pending entries are read first after a restart, or claimed).
            tracing::warn!(error = %e, events = batch.len(), "archive: storing a batch failed; retrying");
            pending = true;
            cursor = 0;
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        }
        if let Err(e) = streams.acknowledge(&batch, a.delete_archived).await {
            // Archived but still pending in Redis: delivered again later,
            // and the primary key makes that a no-op.
            tracing::warn!(error = %e, "archive: acknowledging failed; the batch will come again");
        }
        // After the commit only: what leaves Redis is on disk. A failure
        // leaves entries in Redis until the card's next archived change.
        if let Err(e) =
            trim::trim_cards(&streams, &archive, &batch, settings.history.hot_entries).await
        {
            tracing::warn!(error = %e, "archive: trimming the hot window failed");
        }
        lag.record(&batch);
    }
}

/// How far behind Redis the archive is: from an event's append (Redis'
/// clock, in its stream id) to its acknowledgement (ours; the two clocks
/// are assumed close). Logged every 10 s with the throughput.
#[derive(Default)]
struct Lag {
    since: Option<Instant>,
    events: u64,
    samples_ms: Vec<i64>,
}

impl Lag {
    const EVERY: Duration = Duration::from_secs(10);

    fn record(&mut self, batch: &[Delivered]) {
        let now_ms =
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX);
        let since = *self.since.get_or_insert_with(Instant::now);
        self.events += batch.len() as u64;
        self.samples_ms.extend(
            batch
                .iter()
                .filter_map(Delivered::appended_ms)
                .map(|at| now_ms.saturating_sub(at).max(0)),
        );
        let elapsed = since.elapsed();
        if elapsed < Self::EVERY {
            return;
        }
        self.samples_ms.sort_unstable();
        let at = |q: f64| {
            let i = ((self.samples_ms.len() as f64 - 1.0) * q).round() as usize;
            self.samples_ms.get(i).copied().unwrap_or(0)
        };
        tracing::info!(
            events = self.events,
            events_per_sec = (self.events as f64 / elapsed.as_secs_f64()).round(),
            lag_p50_ms = at(0.5),
            lag_p99_ms = at(0.99),
            lag_max_ms = self.samples_ms.last().copied().unwrap_or(0),
            "archive: progress"
        );
        *self = Lag::default();
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
