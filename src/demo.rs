//! The demo data set loaded at start (config/demo-data.json), so that a
//! fresh `cargo run` has cards and contacts to try the API on.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{DemoSettings, StoreBackend};
use crate::domain::contact::parse_date;
use crate::domain::{
    Card, CardNumberFormat, CardType, Category, ContactCode, ContactPatch, MobileNumber,
};
use crate::engine::{Command, Engine, EngineError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DemoData {
    cards: Vec<DemoCard>,
    contacts: Vec<DemoContact>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DemoCard {
    number: String,
    category_code: u8,
    type_code: u8,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DemoContact {
    code: String,
    name: String,
    mobile_number: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    city: String,
}

/// Whether the demo data goes into the configured store: the embedded
/// store gets it (a try-out's first `curl` needs it); Redis only when the
/// configuration asks, because a default left in a production config would
/// otherwise write the demo cards into the production store.
pub fn wanted(demo: &DemoSettings, backend: StoreBackend) -> bool {
    if demo.data_file.is_empty() {
        return false;
    }
    match backend {
        StoreBackend::Memory => true,
        StoreBackend::Redis if demo.load_into_redis => true,
        StoreBackend::Redis => {
            tracing::info!(
                data_file = %demo.data_file,
                "demo data not loaded into Redis (demo.load_into_redis = true would load it)"
            );
            false
        }
    }
}

/// The demo data set, read and checked at start: a broken file stops the
/// server at once, whatever the store's state.
pub struct DemoSet {
    path: String,
    cards: Vec<Card>,
    contacts: Vec<(ContactCode, ContactPatch)>,
}

pub fn read(format: &CardNumberFormat, path: &str) -> anyhow::Result<DemoSet> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("demo.data_file {path}: {e}"))?;
    let data: DemoData =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("demo.data_file {path}: {e}"))?;
    let mut cards = Vec::new();
    for c in &data.cards {
        let number = format.parse(&c.number)?;
        let category = Category::from_code(c.category_code)
            .ok_or_else(|| anyhow::anyhow!("demo card {}: bad CategoryCode", c.number))?;
        let card_type = CardType::from_code(c.type_code)
            .ok_or_else(|| anyhow::anyhow!("demo card {}: bad TypeCode", c.number))?;
        cards.push(Card::new(number, category, card_type));
    }
    let mut contacts = Vec::new();
    for c in data.contacts {
        let patch = ContactPatch {
            name: Some(c.name),
            mobile: Some(MobileNumber::parse(&c.mobile_number)?),
            birth_date: Some(parse_date("BirthDate", &c.birth_date)?),
            city: Some(c.city),
            ..ContactPatch::default()
        };
        contacts.push((ContactCode::parse(&c.code)?, patch));
    }
    Ok(DemoSet {
        path: path.to_owned(),
        cards,
        contacts,
    })
}

impl DemoSet {
    /// Loads the set; loading it again changes nothing more (existing cards
    /// keep their state, contacts get the same fields).
    pub async fn apply(&self, engine: &Engine) -> Result<(), EngineError> {
        let created = engine
            .insert_cards(&self.cards)
            .await?
            .into_iter()
            .filter(|c| *c)
            .count();
        for (code, patch) in &self.contacts {
            engine
                .execute(Command::UpsertContact {
                    code: code.clone(),
                    patch: patch.clone(),
                })
                .await?;
        }
        tracing::info!(path = %self.path, cards = self.cards.len(), created, "demo data loaded");
        Ok(())
    }

    /// Loads the set once the store answers: a server started without its
    /// store gets its demo data when the store comes, without holding up
    /// the start. Gives up (with an error in the log) only on a refusal
    /// that retrying cannot cure.
    pub async fn apply_when_the_store_answers(self, engine: Arc<Engine>) {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.apply(&engine).await {
                Ok(()) => return,
                Err(e) if is_transient(&e) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(path = %self.path, error = %e, "demo data could not be loaded");
                    return;
                }
            }
        }
    }
}

/// The store is away or busy: worth trying again later.
pub fn is_transient(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::StoreUnavailable(_)
            | EngineError::StoreOutcomeUnknown(_)
            | EngineError::Overloaded
            | EngineError::Contention(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_goes_into_redis_only_when_the_config_asks() {
        let mut demo = crate::config::Settings::defaults().demo;
        assert!(
            !demo.data_file.is_empty(),
            "the default config has demo data"
        );
        assert!(wanted(&demo, StoreBackend::Memory));
        assert!(!wanted(&demo, StoreBackend::Redis), "not by default");
        demo.load_into_redis = true;
        assert!(wanted(&demo, StoreBackend::Redis));
        demo.data_file = String::new();
        assert!(!wanted(&demo, StoreBackend::Memory));
        assert!(!wanted(&demo, StoreBackend::Redis));
    }
}
