//! `run` must be given the data set flags `prepare` was given, or most of
//! its requests are errors that say nothing about the server. `prepare`
//! writes its flags to a manifest (one per server address); `run` compares
//! its own with it, and looks at the server itself: the last active card
//! must be Active (or Blocked by the contact centre) and the last card must
//! exist.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::Value;

use crate::client::{card_state, Api, ApiFailure, Creds};
use crate::dataset::{Dataset, DatasetArgs};

/// `<dir>/<host>.json`, the host made a file name.
pub fn path(dir: &Path, host: &str) -> PathBuf {
    let name: String = host
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    dir.join(format!("{name}.json"))
}

pub fn write(path: &Path, args: &DatasetArgs) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(args)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The flags that differ from the manifest's, if there is one.
pub fn check(path: &Path, args: &DatasetArgs) -> anyhow::Result<bool> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let prepared: Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let given = serde_json::to_value(args)?;
    let mut differ = Vec::new();
    if let (Some(p), Some(g)) = (prepared.as_object(), given.as_object()) {
        for (k, v) in g {
            let was = p.get(k).unwrap_or(&Value::Null);
            if was != v {
                differ.push(format!(
                    "--{} {} (prepared: {})",
                    k.replace('_', "-"),
                    v,
                    was
                ));
            }
        }
    }
    if !differ.is_empty() {
        bail!(
            "the data set flags differ from those `prepare` used for this server ({}): {}. \
             Give the same flags, or prepare again.",
            path.display(),
            differ.join(", ")
        );
    }
    Ok(true)
}

/// Asks the server whether the data set is there as the flags lay it out.
pub async fn probe(api: &Api, creds: &Creds, ds: &Dataset) -> anyhow::Result<()> {
    let balance = |i: usize| {
        let path = format!("/api/card/balance/by/{}", ds.number(i));
        async move { api.call(Method::GET, &path, &creds.pos, None).await }
    };
    let hint = "the server's data set does not match these flags: prepare it with the same \
                --cards/--active/--card-base (or run with --prepare)";
    let last_active = ds.active - 1;
    match balance(last_active).await {
        Ok(b) => {
            let status = card_state(&b).0;
            if status != "2" && status != "3" {
                bail!(
                    "card {} (the last of --active {}) has status {status}, not Active: {hint}",
                    ds.number(last_active),
                    ds.active
                );
            }
        }
        Err(e) => return Err(e).context(hint),
    }
    if let Err(e) = balance(ds.cards - 1).await {
        let missing = e
            .downcast_ref::<ApiFailure>()
            .is_some_and(|f| f.key.contains("NotFound"));
        if missing {
            bail!(
                "card {} (the last of --cards {}) does not exist: {hint}",
                ds.number(ds.cards - 1),
                ds.cards
            );
        }
        return Err(e).context(hint);
    }
    Ok(())
}
