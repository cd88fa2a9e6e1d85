//! `loyalty export` and `loyalty import`: the same dump as the HTTP routes,
//! straight between a file and the configured Redis (for migrations with
//! the server stopped), with a progress bar on standard error.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use super::export::{store_is_empty, Exporter};
use super::import::{retention_ms, ImportError, Importer};
use super::import_rules::ImportRules;
use super::lines::{Line, Splitter};
use super::report::Report;
use crate::config::Settings;
use crate::domain::{Actor, CardNumberFormat, Role};
use crate::store::Store;

/// Bytes read from the dump file at a time.
const READ_CHUNK: usize = 1 << 20;

fn progress(settings: &Settings) -> Duration {
    Duration::from_secs(settings.bulk.progress_interval_secs.max(1))
}

/// Writes the dump to `out` (standard output when `None`).
pub async fn export(
    store: Arc<dyn Store>,
    settings: &Settings,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    // The total is not known before the walk: a counter with its rate.
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {human_pos} records ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut exporter = Exporter::new(store, settings.bulk.export_page, progress(settings));
    let mut written = 0u64;
    while let Some(chunk) = exporter.next_chunk().await.context("reading the store")? {
        sink.write_all(&chunk).context("writing the dump")?;
        let c = exporter.counts();
        let now = c.cards + c.records + c.contacts + c.indexes;
        bar.inc(now - written);
        written = now;
    }
    sink.flush().context("writing the dump")?;
    let c = exporter.counts();
    bar.finish_with_message(format!(
        "done: {} cards, {} records, {} contacts, {} index entries",
        c.cards, c.records, c.contacts, c.indexes
    ));
    Ok(())
}

pub async fn import(
    store: Arc<dyn Store>,
    settings: &Settings,
    file: &Path,
    merge: bool,
) -> anyhow::Result<()> {
    let mut input = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    if !merge && !store_is_empty(&*store).await.context("reading the store")? {
        bail!("the store already holds data: import into an empty store, or pass --merge to create only what is missing");
    }
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = Report::new(
        "import",
        settings.bulk.max_listed_rejections,
        progress(settings),
    );
    let card_format = CardNumberFormat::new(&settings.card.number_pattern)
        .with_context(|| format!("card.number_pattern {:?}", settings.card.number_pattern))?;
    let rules = ImportRules {
        card_format,
        max_ttl_ms: retention_ms(settings),
        // The history says a merge came from the command line.
        merge_by: merge.then(|| Actor {
            login: "loyalty import".into(),
            role: Role::Administrator,
        }),
        now: time::OffsetDateTime::now_utc(),
    };
    let mut importer = Importer::new(store, settings.bulk.parallelism.max(1) * 4, report, rules);
    let mut splitter = Splitter::new(settings.bulk.max_line_bytes);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut lines: Vec<Line> = Vec::new();
    loop {
        let n = input.read(&mut buf).context("reading the dump")?;
        if n == 0 {
            splitter.finish(&mut lines);
        } else {
            splitter.feed(&buf[..n], &mut lines);
        }
        for line in lines.drain(..) {
            importer.line(line).await.map_err(explain)?;
        }
        bar.inc(n as u64);
        bar.set_message(format!("{} lines", importer.report().lines()));
        if n == 0 {
            break;
        }
    }
    let (report, complete) = importer.finish().await.map_err(explain)?;
    bar.finish();
    let fields = report.finish();
    eprintln!("{}", serde_json::Value::Object(fields));
    if !complete {
        bail!("the dump has no end line: it was cut short (what it held is imported)");
    }
    Ok(())
}

fn explain(e: ImportError) -> anyhow::Error {
    match e {
        ImportError::Refused(rule) => anyhow::anyhow!("{}: {}", rule.key.as_str(), rule.message),
        ImportError::Store(e) => anyhow::anyhow!("the store failed: {e}"),
    }
}
