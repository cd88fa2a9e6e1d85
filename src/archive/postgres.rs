//! The archive on disk: PostgreSQL. Every event is one row keyed by its id
//! (`<card>:<seq>`, `<card>:loaded`), inserted `ON CONFLICT DO NOTHING`, so
//! delivering an event again (after a crash between commit and `XACK`)
//! changes nothing. PurchaseId → card is kept for audit once the Redis
//! index has expired.

use tokio_postgres::{Client, NoTls};

use super::streams::Delivered;
use crate::store::events::EventKind;

/// Rows per INSERT statement (arrays bound as parameters).
const ROWS_PER_STATEMENT: usize = 2000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loyalty_events (
    id          text PRIMARY KEY,
    card        text NOT NULL,
    kind        text NOT NULL,
    seq         bigint,
    body        text NOT NULL,
    stream_id   text NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS loyalty_events_card_seq
    ON loyalty_events (card, seq) WHERE seq IS NOT NULL;
CREATE TABLE IF NOT EXISTS loyalty_purchases (
    purchase_id text PRIMARY KEY,
    card        text NOT NULL,
    event_id    text NOT NULL
);
";

pub struct Archive {
    client: Client,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl Archive {
    /// Connects and creates the tables if they are not there. The URL may
    /// hold a password: it is never logged.
    pub async fn connect(url: &str) -> Result<Archive, ArchiveError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "archive: PostgreSQL connection ended");
            }
        });
        client.batch_execute(SCHEMA).await?;
        Ok(Archive { client })
    }

    /// Connects to read only (the server paging a history into the
    /// archive): the tables are the archiver's to create.
    pub async fn connect_reader(url: &str) -> Result<Archive, ArchiveError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "archive: PostgreSQL connection ended");
            }
        });
        Ok(Archive { client })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Stores the events in one transaction: when this returns Ok, every
    /// one of them is on disk (once, whatever was there before).
    pub async fn store(&mut self, events: &[Delivered]) -> Result<(), ArchiveError> {
        let tx = self.client.transaction().await?;
        let insert_events = tx
            .prepare(
                "INSERT INTO loyalty_events (id, card, kind, seq, body, stream_id)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[])
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let insert_purchases = tx
            .prepare(
                "INSERT INTO loyalty_purchases (purchase_id, card, event_id)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (purchase_id) DO NOTHING",
            )
            .await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|d| d.event.id.as_str()).collect();
            let cards: Vec<&str> = chunk.iter().map(|d| d.event.card.as_str()).collect();
            let kinds: Vec<&str> = chunk.iter().map(|d| d.event.kind.as_str()).collect();
            let seqs: Vec<Option<i64>> = chunk
                .iter()
                .map(|d| d.event.seq.and_then(|s| i64::try_from(s).ok()))
                .collect();
            let bodies: Vec<&str> = chunk.iter().map(|d| d.event.body.as_str()).collect();
            let stream_ids: Vec<&str> = chunk.iter().map(|d| d.entry_id.as_str()).collect();
            tx.execute(
                &insert_events,
                &[&ids, &cards, &kinds, &seqs, &bodies, &stream_ids],
            )
            .await?;
            let purchases: Vec<(String, &str, &str)> = chunk
                .iter()
                .filter_map(|d| Some((purchase_of(d)?, d.event.card.as_str(), d.event.id.as_str())))
                .collect();
            if !purchases.is_empty() {
                let pids: Vec<&str> = purchases.iter().map(|p| p.0.as_str()).collect();
                let pcards: Vec<&str> = purchases.iter().map(|p| p.1).collect();
                let pevents: Vec<&str> = purchases.iter().map(|p| p.2).collect();
                tx.execute(&insert_purchases, &[&pids, &pcards, &pevents])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Per card, the number of history entries archived without a gap from
    /// the first (every entry below it is here); cards with a gap are left
    /// out.
    pub async fn contiguous(&self, cards: &[&str]) -> Result<Vec<(String, u64)>, ArchiveError> {
        let rows = self
            .client
            .query(
                "SELECT card, count(*), max(seq) FROM loyalty_events
                 WHERE card = ANY($1) AND seq IS NOT NULL GROUP BY card",
                &[&cards],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let count: i64 = r.get(1);
                let max: i64 = r.get(2);
                (max + 1 == count).then(|| (r.get::<_, String>(0), u64::try_from(count).ok()))
            })
            .filter_map(|(card, n)| Some((card, n?)))
            .collect())
    }

    /// The archived history entries of a card with a sequence number below
    /// `before`, newest first, at most `limit`: (seq, entry JSON).
    pub async fn history(
        &self,
        card: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, ArchiveError> {
        let rows = self
            .client
            .query(
                "SELECT seq, body FROM loyalty_events
                 WHERE card = $1 AND seq IS NOT NULL AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
                &[
                    &card,
                    &i64::try_from(before).unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let seq: i64 = r.get(0);
                Some((u64::try_from(seq).ok()?, r.get::<_, String>(1)))
            })
            .collect())
    }
}

/// The PurchaseId of a purchase's history event.
fn purchase_of(d: &Delivered) -> Option<String> {
    if d.event.kind != EventKind::History {
        return None;
    }
    let entry: crate::domain::HistoryEntry = serde_json::from_str(&d.event.body).ok()?;
    match (entry.operation, entry.bonus) {
        (crate::domain::Operation::Purchase, Some(b)) => Some(b.reference),
        _ => None,
    }
}
