//! Export and import over HTTP (docs/api.md §8, docs/export.md). The export is a
//! chunked NDJSON body produced page by page as the client reads it; an
//! error after the first byte cannot change the status any more, so it
//! ends the body with an `error` line (and without the `end` line, which
//! is how an import knows a dump is incomplete).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::json;

use super::super::context::Ctx;
use super::super::error::ApiError;
use super::super::views::Fields;
use super::source::Source;
use crate::bulk::export::{store_is_empty, Exporter};
use crate::bulk::import::{retention_ms, ImportError, Importer};
use crate::bulk::import_rules::ImportRules;
use crate::bulk::report::Report;
use crate::domain::ErrorKey;
use crate::engine::EngineError;

/// A failed store page is asked for again this many times, a little later
/// each time, before the export gives up.
const PAGE_RETRIES: u32 = 5;

pub fn export(ctx: &Ctx<'_>) -> HttpResponse {
    let bulk = &ctx.state.settings.bulk;
    let exporter = Exporter::new(
        ctx.state.engine.store(),
        bulk.export_page,
        Duration::from_secs(bulk.progress_interval_secs.max(1)),
    );
    let body = futures_util::stream::unfold(Some(exporter), |exporter| async move {
        let mut exporter = exporter?;
        let mut failures = 0;
        loop {
            match exporter.next_chunk().await {
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(Some(chunk)) => {
                    return Some((
                        Ok::<_, actix_web::Error>(Bytes::from(chunk)),
                        Some(exporter),
                    ))
                }
                Ok(None) => return None,
                Err(e) if failures < PAGE_RETRIES => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "export: a store page failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "export failed; the dump ends incomplete");
                    let mut line = json!({
                        "Kind": "error",
                        "Key": ErrorKey::StoreUnavailable.as_str(),
                        "Value": "the export failed; this dump is incomplete",
                    })
                    .to_string()
                    .into_bytes();
                    line.push(b'\n');
                    return Some((Ok(Bytes::from(line)), None));
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body)
}

pub async fn import(ctx: &Ctx<'_>, source: Source) -> Result<Fields, ApiError> {
    let merge = ctx.params.flag("merge")?;
    let store = ctx.state.engine.store();
    let store_error = |e| ctx.engine_error(EngineError::from(e));
    if !merge && !store_is_empty(&*store).await.map_err(store_error)? {
        return Err(ApiError::new(
            ErrorKey::StoreNotEmpty,
            "the store already holds data: import into an empty store, or pass ?merge=true to create only what is missing",
        ));
    }
    let bulk = &ctx.state.settings.bulk;
    let report = Report::new(
        "import",
        bulk.max_listed_rejections,
        Duration::from_secs(bulk.progress_interval_secs.max(1)),
    );
    let rules = ImportRules {
        card_format: ctx.state.card_format.clone(),
        max_ttl_ms: retention_ms(&ctx.state.settings),
        merge_by: merge.then(|| ctx.actor.clone()),
        now: time::OffsetDateTime::now_utc(),
    };
    let mut importer = Importer::new(store, bulk.parallelism.max(1) * 4, report, rules);
    let mut source = source;
    let read = async {
        while let Some(line) = source.next().await? {
            importer
                .line(line)
                .await
                .map_err(|e| import_error(ctx, e))?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(mut e) = read {
        e.fields.extend(importer.report().fields());
        return Err(e);
    }
    let (report, complete) = importer.finish().await.map_err(|e| import_error(ctx, e))?;
    if !complete {
        tracing::warn!("import: the dump has no end line; it was cut short");
    }
    let mut f = report.finish();
    f.insert("Complete".into(), complete.into());
    Ok(f)
}

fn import_error(ctx: &Ctx<'_>, e: ImportError) -> ApiError {
    match e {
        ImportError::Refused(rule) => rule.into(),
        ImportError::Store(e) => ctx.engine_error(EngineError::from(e)),
    }
}
