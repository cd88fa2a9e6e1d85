//! docs/configuration.md is the configuration reference: it must list every
//! key of config/default.toml, no other, each with the same default. A key
//! added to one and not the other fails here, so the reference cannot drift.

use std::collections::BTreeMap;

use super::DEFAULT_TOML;

const REFERENCE: &str = include_str!("../../docs/configuration.md");

/// Dotted key → default, from config/default.toml.
fn defaults() -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                other => {
                    out.insert(path, other.clone());
                }
            }
        }
    }
    let table: toml::Table = toml::from_str(DEFAULT_TOML).expect("config/default.toml parses");
    let mut out = BTreeMap::new();
    walk("", &table, &mut out);
    out
}

/// Dotted key → default, from the reference's table rows
/// (`| `key` | `default` | meaning |`).
fn documented() -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    for line in REFERENCE.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let key = cells[1].trim_matches('`');
        let default = cells[2].trim_matches('`');
        let parsed: toml::Table = toml::from_str(&format!("v = {default}")).unwrap_or_else(|e| {
            panic!("the default of {key} is not a TOML value: {default} ({e})")
        });
        let previous = out.insert(key.to_owned(), parsed["v"].clone());
        assert!(previous.is_none(), "{key} is listed twice");
    }
    out
}

#[test]
fn the_reference_lists_every_key_of_default_toml_with_its_default() {
    let (defaults, documented) = (defaults(), documented());
    let undocumented: Vec<&String> = defaults
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    let unknown: Vec<&String> = documented
        .keys()
        .filter(|k| !defaults.contains_key(*k))
        .collect();
    assert!(
        undocumented.is_empty(),
        "config/default.toml has keys docs/configuration.md lacks: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/configuration.md lists keys config/default.toml lacks: {unknown:?}"
    );
    for (key, value) in &defaults {
        assert_eq!(
            &documented[key], value,
            "docs/configuration.md gives {key} another default than config/default.toml"
        );
    }
}
