//! A purchase's write (`Store::commit_purchase`): one script on one node;
//! on a cluster, the PurchaseId's claim first (its index entry lives in
//! another slot), then the same script without it.

use redis::Value;

use super::errors;
use super::{codec, int, text, RedisStore};
use crate::domain::Card;
use crate::store::{Index, PurchaseCommit, PurchaseWrite, RecordRead, StoreError, Versioned};

impl RedisStore {
    pub(super) async fn commit_purchase_write(
        &self,
        w: &PurchaseWrite<'_>,
    ) -> Result<PurchaseCommit, StoreError> {
        let cluster = self.is_cluster();
        if cluster {
            match self
                .claim_index(Index::Purchase, w.purchase_id, w.claim_expected, w.owner)
                .await?
            {
                Ok(()) => {}
                Err(Some(claim)) if claim.owner == w.owner => {}
                Err(other) => return Ok(PurchaseCommit::Claimed(other)),
            }
        }
        let number = w.card.number.as_str();
        let key = self.keys.card(number);
        let history = self.keys.history(number);
        let stream = self.keys.events(number);
        let set = self.keys.card_records(number);
        let index = self.keys.index(Index::Purchase, w.purchase_id);
        let mut keys: Vec<&str> = vec![&key, &history, &stream, &set];
        if !cluster {
            keys.push(&index);
        }
        let version = w.expected_version.to_string();
        let ttl = w.ttl_secs.to_string();
        let card = codec::encode(w.card)?;
        let entry = codec::encode(w.entry)?;
        let event: &[u8] = if self.events.max_len > 0 { &entry } else { b"" };
        let max_len = self.events.max_len.to_string();
        let mut args: Vec<&[u8]> = vec![
            version.as_bytes(),
            &card,
            &entry,
            ttl.as_bytes(),
            max_len.as_bytes(),
            number.as_bytes(),
            event,
            w.outcome.key.as_bytes(),
            w.outcome.value.as_bytes(),
        ];
        let claim_ttl = self.purchase_claim_ttl();
        if !cluster {
            let (mode, expected) = match w.claim_expected {
                None => ("0", ""),
                Some(e) => ("1", e),
            };
            args.extend_from_slice(&[
                mode.as_bytes(),
                expected.as_bytes(),
                w.owner.as_bytes(),
                claim_ttl.as_bytes(),
            ]);
        }
        self.forget(&key);
        let reply = self
            .script(&self.scripts.confirm_purchase, &keys, &args)
            .await;
        // Also after: a miss that read the old version while the write was
        // under way must not install it.
        self.forget(&key);
        if !cluster {
            self.forget(&index);
        }
        let reply = reply?;
        let bad = || errors::corrupt(&key, format!("unexpected script reply {reply:?}"));
        let Value::Array(items) = &reply else {
            return Err(bad());
        };
        let Some(kind) = items.first().and_then(int) else {
            return Err(bad());
        };
        match (kind, &items[1..]) {
            (1, []) => Ok(PurchaseCommit::Applied),
            (2, [value, left]) => Ok(PurchaseCommit::Stored(RecordRead {
                value: text(value).ok_or_else(bad)?,
                ttl_ms: int(left).filter(|t| *t >= 0),
            })),
            (3, []) => Ok(PurchaseCommit::Claimed(None)),
            (3, [owner, since, now]) => Ok(PurchaseCommit::Claimed(Some(super::claim(
                &index,
                text(owner).ok_or_else(bad)?,
                text(since),
                text(now),
            )?))),
            (0, rest) => Ok(PurchaseCommit::Conflict {
                current: current_card(&key, rest)?.map(Box::new),
                claim_held: cluster,
            }),
            _ => Err(bad()),
        }
    }
}

/// The card a lost compare-and-set handed back (`[v, d]`, both nil or
/// absent when the card is gone).
fn current_card(key: &str, rest: &[Value]) -> Result<Option<Versioned<Card>>, StoreError> {
    match rest {
        [] | [Value::Nil] | [Value::Nil, Value::Nil] => Ok(None),
        [v, Value::BulkString(d)] => {
            let v = text(v).ok_or_else(|| errors::corrupt(key, "version not a string"))?;
            let version = v
                .parse::<u64>()
                .map_err(|_| errors::corrupt(key, format!("version {v:?}")))?;
            Ok(Some(Versioned {
                value: codec::decode(key, d)?,
                version,
            }))
        }
        _ => Err(errors::corrupt(
            key,
            "a version without data or data without a version",
        )),
    }
}
