//! The hot window: once a card's history entries are safely in the
//! archive, the archiver takes them off the card's list in Redis, keeping
//! the newest `history.hot_entries` (docs/adr/0009). Only entries the
//! archive holds without a gap below them go: with several archivers (or
//! one that took over a dead one's events) an entry may be archived before
//! an older one of the same card, and that older one must not be lost.

use futures_util::future::join_all;
use redis::RedisResult;

use super::postgres::Archive;
use super::streams::{Delivered, Streams};
use crate::store::events::EventKind;

const TRIM: &str = include_str!("trim_history.lua");

/// Trims the cards that the batch has archived history entries of.
/// Returns how many entries left Redis.
pub async fn trim_cards(
    streams: &Streams,
    archive: &Archive,
    batch: &[Delivered],
    keep: u64,
) -> anyhow::Result<u64> {
    let mut cards: Vec<&str> = batch
        .iter()
        .filter(|d| d.event.kind == EventKind::History)
        .map(|d| d.event.card.as_str())
        .collect();
    cards.sort_unstable();
    cards.dedup();
    if cards.is_empty() {
        return Ok(0);
    }
    let archived = archive.contiguous(&cards).await?;
    let mut removed = 0;
    for chunk in archived.chunks(512) {
        let results = join_all(
            chunk
                .iter()
                .map(|(card, upto)| trim_one(streams, card, *upto, keep)),
        )
        .await;
        for r in results {
            removed += r?;
        }
    }
    Ok(removed)
}

async fn trim_one(streams: &Streams, card: &str, upto: u64, keep: u64) -> RedisResult<u64> {
    let keys = streams.keys();
    streams
        .eval(
            TRIM,
            &[&keys.card(card), &keys.history(card)],
            &[upto, keep],
        )
        .await
}
