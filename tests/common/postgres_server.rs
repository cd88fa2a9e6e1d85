//! A throwaway PostgreSQL for the archive tests: Debian's binaries
//! (`/usr/lib/postgresql/<version>/bin`), a fresh cluster in a temp dir
//! with trust authentication, on a free port; stopped when dropped. Never
//! the machine's own PostgreSQL (5432). PostgreSQL refuses to run as root,
//! so under root it runs as the `postgres` user (Debian's package makes it).

use std::net::TcpStream;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PostgresServer {
    child: Child,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL version with initdb").1
}

/// `cmd` as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn owner_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

impl PostgresServer {
    /// Starts PostgreSQL on `port` with its data and socket in `dir`
    /// (created; handed to the `postgres` user under root).
    pub fn start(dir: &Path, port: u16) -> PostgresServer {
        std::fs::create_dir_all(dir).expect("the PostgreSQL dir");
        if let Some((uid, gid)) = owner_ids() {
            // Only root may; otherwise we run as ourselves and own it.
            let _ = chown(dir, Some(uid), Some(gid));
            if let Some(parent) = dir.parent() {
                // The temp dir is 0700: the postgres user must get through.
                let _ = Command::new("chmod").arg("o+x").arg(parent).status();
            }
        }
        let bin = bin_dir();
        let data = dir.join("data");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "loyalty", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "logging_collector=off",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("postgres.log")).expect("a log file"),
            ))
            .spawn()
            .expect("start postgres");
        let server = PostgresServer { child, port };
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                // Accepting connections is not yet accepting logins; the
                // client retries below.
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        panic!("postgres on port {port} did not start:\n{log}");
    }

    /// A libpq connection string (no password: trust authentication).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=loyalty dbname=postgres",
            self.port
        )
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGINT: a fast shutdown (SIGKILL would leave its shared memory).
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
