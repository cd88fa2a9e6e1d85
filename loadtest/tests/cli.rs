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
        "--model",
        "--rate",
        "--steps",
        "--warmup-secs",
        "--limit",
        "--server-pid",
        "--threshold",
        "--users",
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
        ratio_to_health: Some(0.5),
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
    // Another rate is another experiment: refused, or flagged when allowed.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut s2 = summary.clone();
    s2.settings.rates = vec![400.0];
    s2.write(&other).unwrap();
    let (code, cmp) = loadtest(&["compare", dir.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(code, 2, "{cmp}");
    assert!(cmp.contains("rates: [] vs [400.0]"), "{cmp}");
    let (code, cmp) = loadtest(&[
        "compare",
        "--allow-mismatch",
        "--a",
        dir.to_str().unwrap(),
        "--b",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{cmp}");
    assert!(cmp.contains("MISMATCHED SETTINGS"), "{cmp}");
    // A run that failed its gates fails the comparison.
    let mut s3 = summary.clone();
    s3.passed = false;
    s3.write(&other).unwrap();
    let (code, cmp) = loadtest(&["compare", dir.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(code, 1, "{cmp}");
    assert!(cmp.contains("FAILED RUNS"), "{cmp}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn impossible_gates_and_goose_options_in_the_open_model_are_refused() {
    for (args, says) in [
        (
            &["run", "pos-mix", "--max-p99-ms", "0.001"][..],
            "at least 0.05 ms",
        ),
        (
            &["run", "pos-mix", "--max-p99-ms", "NaN"][..],
            "--max-p99-ms",
        ),
        (
            &["run", "pos-mix", "--max-error-rate", "101"][..],
            "from 0 to 100",
        ),
        (&["run", "pos-mix", "--rate", "0"][..], "above 0"),
        (&["run", "pos-mix", "--steps", "100,-5"][..], "above 0"),
        (
            &["run", "pos-mix", "--limit", "p99<0.001ms"][..],
            "at least 0.05 ms",
        ),
        (&["run", "pos-mix", "--limit", "p100<5ms"][..], "below 100"),
        (&["run", "pos-mix", "--users", "8"][..], "--model closed"),
        (
            &["run", "pos-mix", "--threshold", "p99<5ms"][..],
            "--model closed",
        ),
        (
            &[
                "run",
                "pos-mix",
                "--model",
                "closed",
                "--co-mitigation",
                "average",
            ][..],
            "per pass",
        ),
        (&["run", "restart-storm"][..], "closed model"),
        (
            &["capacity", "pos-mix", "--max-p99-ms", "0"][..],
            "at least 0.05 ms",
        ),
        (&["capacity", "pos-mix", "--growth", "1"][..], "--growth"),
    ] {
        let (code, text) = loadtest(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
    }
}

#[test]
fn bad_data_set_flags_are_refused() {
    let (code, text) = loadtest(&["prepare", "--cards", "10", "--active", "20"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--active"), "{text}");
}
