//! Settings with a fixed set of values, typed where they are read: a
//! misspelt value stops the server at load with the key and the accepted
//! values, instead of being matched as a string in several places and
//! failing (or not) wherever one of them forgot a case.

use serde::{de::Error as _, Deserialize, Deserializer};

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded store: in the process, nothing survives a restart.
    Memory,
    Redis,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl StoreBackend {
    const NAMES: &'static [(&'static str, StoreBackend)] = &[
        ("memory", StoreBackend::Memory),
        ("redis", StoreBackend::Redis),
    ];

    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }
}

impl LogFormat {
    const NAMES: &'static [(&'static str, LogFormat)] =
        &[("text", LogFormat::Text), ("json", LogFormat::Json)];

    pub fn as_str(self) -> &'static str {
        name_of(Self::NAMES, self)
    }
}

impl<'de> Deserialize<'de> for StoreBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        choose(d, "store.backend", Self::NAMES)
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        choose(d, "log.format", Self::NAMES)
    }
}

impl std::fmt::Display for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn name_of<T: Copy + PartialEq>(names: &[(&'static str, T)], value: T) -> &'static str {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("?", |(name, _)| name)
}

/// The key is named in the message because the configuration library does
/// not always say which key a custom error came from.
fn choose<'de, D: Deserializer<'de>, T: Copy>(
    d: D,
    key: &str,
    names: &[(&str, T)],
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    names
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let accepted: Vec<String> = names.iter().map(|(n, _)| format!("{n:?}")).collect();
            D::Error::custom(format!(
                "{key} = {text:?} is not accepted: use one of {}",
                accepted.join(", ")
            ))
        })
}
