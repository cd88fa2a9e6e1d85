//! The command line as scripts use it (this test also makes `cargo test
//! --workspace --no-run` build the binary that `loadtest/run.sh ci` runs).

use std::process::Command;

fn loadtest(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loyalty-loadtest"))
        .args(args)
        .output()
        .expect("the binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn run_takes_our_options_and_goose_options() {
    let (code, help) = loadtest(&["run", "--help"]);
    assert_eq!(code, 0, "{help}");
    for option in [
        "--max-p99-ms",
        "--max-error-rate",
        "--cards",
        "--bonuses-per-card",
        "--redis",
        "--tills",
        "--throttle-requests",
        "--co-mitigation",
        "--baseline-file",
        "--run-time",
    ] {
        assert!(help.contains(option), "{option} missing from run --help");
    }
    for scenario in [
        "pos-mix",
        "read-only",
        "write-heavy",
        "lifecycle",
        "restart-storm",
    ] {
        assert!(help.contains(scenario), "{scenario} missing");
    }
}

#[test]
fn table_and_compare_read_summaries() {
    let dir = std::env::temp_dir().join(format!("loadtest-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let summary = loyalty_loadtest::report::Summary {
        scenario: "pos-mix".into(),
        backend: "memory".into(),
        command: "loyalty-loadtest run pos-mix".into(),
        ratio_to_health: 0.5,
        passed: true,
        ..Default::default()
    };
    summary.write(&dir).unwrap();
    let (code, table) = loadtest(&["table", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains("#### pos-mix") && table.contains("| 0.500 |"),
        "{table}"
    );
    let (code, cmp) = loadtest(&["compare", dir.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{cmp}");
    assert!(cmp.contains("ratio to /health"), "{cmp}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_data_set_flags_are_refused() {
    let (code, text) = loadtest(&["prepare", "--cards", "10", "--active", "20"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--active"), "{text}");
}
