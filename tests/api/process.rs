//! The `loyalty` binary as operators run it: start, refuse, stop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_loyalty");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_prints_the_memory_warning_answers_and_exits_0_on_sigterm() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen_warning = false;
    // Read until the server says it listens (bounded by the child's output).
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen_warning |= line.contains("nothing survives a restart");
        if line.contains("listening") {
            break;
        }
    }
    assert!(
        seen_warning,
        "the embedded store must warn that data is not kept"
    );

    // The README's first curl, in Rust: the demo data is there.
    let body = http_get(
        port,
        "/api/card/balance/by/7000000000001",
        Some("pos:pos-demo"),
    );
    assert!(body.contains(r#""Key":"OK""#), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert_eq!(exit.code(), Some(0), "SIGTERM must drain and exit 0");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failed_logins_are_logged_with_the_attempted_login_reason_and_client() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("LOYALTY__DEMO__DATA_FILE", "")
        .env("LOYALTY__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("listening") {
            break;
        }
    }
    http_get(
        port,
        "/api/card/balance/by/7000000000001",
        Some("till-77:s3cret-pw"),
    );
    http_get(port, "/api/nowhere", Some("pos:not-the-password"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    child.wait().unwrap();
    for l in &log {
        assert!(
            !l.contains("s3cret-pw") && !l.contains("not-the-password"),
            "a password reached the log: {l}"
        );
    }
    let failed: Vec<serde_json::Value> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "authentication failed")
        .map(|l| l["fields"].clone())
        .collect();
    let of = |login: &str| {
        failed
            .iter()
            .find(|f| f["login"] == login)
            .unwrap_or_else(|| panic!("no failed login of {login}: {log:#?}"))
            .clone()
    };
    // An unknown login may be a password typed into the login field: it
    // is not written, the reason is.
    assert!(log.iter().all(|l| !l.contains("till-77")), "{log:#?}");
    let stuffing = of("(unknown)");
    assert_eq!(stuffing["reason"], "unknown_user", "{stuffing}");
    assert_eq!(stuffing["client"], "127.0.0.1", "{stuffing}");
    assert_eq!(stuffing["key"], "Unauthorized", "{stuffing}");
    // An unknown route under /api asks for credentials first.
    let till = of("pos");
    assert_eq!(till["reason"], "wrong_password", "{till}");
    assert_eq!(till["route"], "unmatched", "{till}");
}

#[test]
fn serve_starts_without_redis_and_answers_503_until_it_comes() {
    let port = free_port();
    let nothing_there = free_port();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("LOYALTY__STORE__BACKEND", "redis")
        .env(
            "LOYALTY__STORE__URL",
            format!("redis://127.0.0.1:{nothing_there}/0"),
        )
        .env("LOYALTY__STORE__CONNECT_TIMEOUT_MS", "200")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // It listens (before, it exited 1 here).
    assert!(lines.by_ref().any(|l| l.unwrap().contains("listening")));
    assert!(http_get(port, "/health", None).starts_with("HTTP/1.1 200"));
    let ready = http_get(port, "/ready", None);
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains(r#""Key":"StoreUnavailable""#), "{ready}");
    let balance = http_get(
        port,
        "/api/card/balance/by/7000000000001",
        Some("pos:pos-demo"),
    );
    assert!(balance.contains(r#""Key":"StoreUnavailable""#), "{balance}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_value_outside_a_settings_choices_stops_the_start_naming_the_key_and_the_choices() {
    for (var, value, expected) in [
        (
            "LOYALTY__STORE__BACKEND",
            "mongo",
            r#"store.backend = "mongo""#,
        ),
        ("LOYALTY__LOG__FORMAT", "yaml", r#"log.format = "yaml""#),
        (
            "LOYALTY__ACTIVATION__REQUIRED_FIELDS",
            "Nmae",
            "activation.required_fields: unknown field \"Nmae\"",
        ),
    ] {
        let mut child = Command::new(BIN)
            .current_dir(ROOT)
            .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{}", free_port()))
            .env(var, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A server that accepted the value serves until stopped: stop it
        // after a generous while rather than wait for ever.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.is_some_and(|s| !s.success()),
            "{var}={value} started"
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains(expected), "{var}={value}: {err}");
        let accepted = match var {
            "LOYALTY__STORE__BACKEND" => r#""memory", "redis""#,
            "LOYALTY__LOG__FORMAT" => r#""text", "json""#,
            _ => "Name, MobileNumber, Email, BirthDate, Gender, City",
        };
        assert!(err.contains(accepted), "{var}={value}: {err}");
    }
}

/// A hand-made till token's SHA-256 in the users file can never log in
/// (only `lt1_` secrets are checked as tokens): the start says which shape
/// is accepted, so the mistake is not a silent one.
#[test]
fn the_start_logs_the_one_till_token_shape_when_the_users_file_has_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let demo = std::fs::read_to_string(format!("{ROOT}/config/demo-users.toml")).unwrap();
    // sha256 of `openssl rand -hex 32`-style secret: any 64 hex digits.
    let till = format!(
        "[[users]]\nlogin = \"till-9\"\nrole = \"pos\"\ntoken_sha256 = \"{}\"\n",
        "ab".repeat(32)
    );
    std::fs::write(&users, format!("{demo}\n{till}")).unwrap();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{}", free_port()))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("LOYALTY__AUTH__USERS_FILE", &users)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut notice = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.contains("till token") {
            notice = Some(line.clone());
        }
        if line.contains("listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let notice = notice.expect("a line about till tokens before listening");
    assert!(
        notice.contains("1 user(s)") && notice.contains("lt1_ followed by 43 base64url"),
        "{notice}"
    );
}

#[test]
fn demo_credentials_are_refused_on_a_public_bind_unless_allowed() {
    let out = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("demo users"), "{err}");
}

#[test]
fn a_copy_of_the_demo_users_without_its_demo_flags_is_refused_on_a_public_bind() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("users.toml");
    let demo = std::fs::read_to_string(format!("{ROOT}/config/demo-users.toml")).unwrap();
    std::fs::write(&copy, demo.replace("demo = true", "")).unwrap();
    let out = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", "0.0.0.0:0")
        .env("LOYALTY__AUTH__USERS_FILE", &copy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("demo users") && err.contains("admin"), "{err}");
}

#[test]
fn hash_password_prints_an_argon2id_phc_string_that_verifies() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(hash.trim()).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(b"s3cret", &parsed)
        .is_ok());
    assert!(argon2::Argon2::default()
        .verify_password(b"s3cret\n", &parsed)
        .is_err());
}

#[test]
fn sighup_reloads_the_users_file_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let demo = std::fs::read_to_string(format!("{ROOT}/config/demo-users.toml")).unwrap();
    std::fs::write(&users, &demo).unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .current_dir(ROOT)
        .env("LOYALTY__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("LOYALTY__HTTP__WORKERS", "1")
        .env("LOYALTY__AUTH__USERS_FILE", &users)
        // Only the signal may reload here.
        .env("LOYALTY__AUTH__RELOAD_CHECK_MS", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("listening") {
            break;
        }
    }
    let path = "/api/card/balance/by/7000000000001";
    assert!(http_get(port, path, Some("pos:pos-demo")).contains(r#""Key":"OK""#));
    let without_pos: Vec<&str> = demo
        .split("[[users]]")
        .filter(|e| !e.contains("login = \"pos\""))
        .collect();
    std::fs::write(&users, without_pos.join("[[users]]")).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The reload is logged; wait for that line (bounded by the output).
    for line in lines.by_ref() {
        if line.unwrap().contains("users file reloaded") {
            break;
        }
    }
    assert!(http_get(port, path, Some("pos:pos-demo")).contains(" 401 "));
    assert!(http_get(port, path, Some("client:client-demo")).contains(r#""Key":"OK""#));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the server"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn issue_till_token_prints_a_token_and_the_entry_that_accepts_it() {
    let out = Command::new(BIN)
        .args(["issue-till-token", "--login", "till-42"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().find(|l| l.starts_with("lt1_")).unwrap();
    let sha = text
        .lines()
        .find_map(|l| l.strip_prefix("token_sha256 = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    let stored = loyalty::api::till_token::parse_hex_digest(sha).unwrap();
    assert!(loyalty::api::till_token::verify(token, &stored));
    assert!(text.contains("login = \"till-42\""), "{text}");
}

/// A minimal HTTP/1.1 GET, so this test needs no runtime.
fn http_get(port: u16, path: &str, basic: Option<&str>) -> String {
    use base64::Engine as _;
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = basic
        .map(|b| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
