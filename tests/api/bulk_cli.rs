//! `loyalty export` / `loyalty import`: the dump between a file and the
//! configured Redis, without HTTP (docs/export.md).

use std::process::{Command, Output};

use crate::bulk_support::*;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_loyalty");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The binary against the test run's store under `prefix`.
fn loyalty(prefix: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(ROOT).args(args);
    match backend() {
        Backend::Redis { urls, .. } => cmd
            .env("LOYALTY__STORE__BACKEND", "redis")
            .env("LOYALTY__STORE__URL", urls.join(","))
            .env("LOYALTY__STORE__KEY_PREFIX", prefix),
        Backend::Memory => cmd.env("LOYALTY__STORE__BACKEND", "memory"),
    };
    cmd.output().expect("the binary runs")
}

#[tokio::test]
async fn the_command_line_exports_and_imports_what_the_server_holds() {
    let (from, to) = (unique_prefix(), unique_prefix());
    let (p1, p2) = (from.clone(), to.clone());
    let source = spawn_with(move |s| s.store.key_prefix = p1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.ndjson");
    let file = file.to_str().unwrap();
    if !shared_store() {
        // The embedded store lives inside a server process.
        let export = loyalty(&from, &["export", "--out", file]);
        assert!(!export.status.success());
        let err = String::from_utf8_lossy(&export.stderr);
        assert!(err.contains("/api/admin/export"), "{err}");
        return;
    }
    let _ = source.card_in(State::Active).await;
    let _ = source.card_in(State::IssuedUnbound).await;
    let export = loyalty(&from, &["export", "--out", file]);
    assert!(export.status.success(), "{export:?}");
    let dump = std::fs::read_to_string(file).unwrap();
    assert_eq!(comparable(&dump), comparable(&source.export_text().await));

    let import = loyalty(&to, &["import", file]);
    assert!(import.status.success(), "{import:?}");
    let target = spawn_with(move |s| s.store.key_prefix = p2).await;
    assert_eq!(comparable(&target.export_text().await), comparable(&dump));
    // Not into a store that holds data, unless merging.
    assert!(!loyalty(&to, &["import", file]).status.success());
    assert!(loyalty(&to, &["import", "--merge", file]).status.success());
}
