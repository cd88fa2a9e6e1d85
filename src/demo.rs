//! The demo data set loaded at start (config/demo-data.json), so that a
//! fresh `cargo run` has cards and contacts to try the API on.

use serde::Deserialize;

use crate::domain::contact::parse_date;
use crate::domain::{
    Card, CardNumberFormat, CardType, Category, ContactCode, ContactPatch, MobileNumber,
};
use crate::engine::{Command, Engine};

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

pub async fn load(engine: &Engine, format: &CardNumberFormat, path: &str) -> anyhow::Result<()> {
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
    let created = engine
        .insert_cards(&cards)
        .await?
        .into_iter()
        .filter(|c| *c)
        .count();
    for c in data.contacts {
        let patch = ContactPatch {
            name: Some(c.name),
            mobile: Some(MobileNumber::parse(&c.mobile_number)?),
            birth_date: Some(parse_date("BirthDate", &c.birth_date)?),
            city: Some(c.city),
            ..ContactPatch::default()
        };
        engine
            .execute(Command::UpsertContact {
                code: ContactCode::parse(&c.code)?,
                patch,
            })
            .await?;
    }
    tracing::info!(path, cards = cards.len(), created, "demo data loaded");
    Ok(())
}
