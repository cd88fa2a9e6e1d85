//! The processes of the run: redis-server, two `loyalty` servers,
//! redis_exporter and Prometheus. Each runs under a small shell watchdog
//! that kills it once this test process is gone, so that nothing outlives
//! the run even when it is killed.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    program: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    cwd: PathBuf,
    pub log: PathBuf,
    pid_file: PathBuf,
    watchdog: Option<Child>,
}

/// A loopback port that is free now (never one of the well-known ports the
/// machine's own services use).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = l.local_addr().expect("local addr").port();
        if ![6379, 8080, 9090, 9121, 3000].contains(&port) {
            return port;
        }
    }
}

/// Is `program` on PATH?
pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Proc {
    pub fn start(
        name: &str,
        dir: &Path,
        program: &str,
        args: &[String],
        envs: &[(String, String)],
        cwd: &Path,
    ) -> Proc {
        let mut p = Proc {
            name: name.to_owned(),
            program: program.to_owned(),
            args: args.to_vec(),
            envs: envs.to_vec(),
            cwd: cwd.to_owned(),
            log: dir.join(format!("{name}.log")),
            pid_file: dir.join(format!("{name}.pid")),
            watchdog: None,
        };
        p.launch();
        p
    }

    fn launch(&mut self) {
        let parent = std::process::id();
        let _ = std::fs::remove_file(&self.pid_file);
        // "$@" is the command; its pid goes to a file so that it can be
        // stopped (SIGTERM) on its own, as an operator would.
        let script = format!(
            "\"$@\" & r=$!; echo $r > '{pid}'; \
             while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             if kill -0 $r 2>/dev/null; then kill $r; sleep 1; kill -9 $r 2>/dev/null; fi; \
             wait $r 2>/dev/null",
            pid = self.pid_file.display()
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log file");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.watchdog = Some(child);
    }

    fn pid(&self) -> Option<String> {
        for _ in 0..100 {
            if let Ok(p) = std::fs::read_to_string(&self.pid_file) {
                if !p.trim().is_empty() {
                    return Some(p.trim().to_owned());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, as systemd or an operator stops it; SIGKILL after 10s.
    pub fn stop(&mut self) {
        let Some(mut w) = self.watchdog.take() else {
            return;
        };
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(w.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill").arg("-KILL").arg(&pid).status();
        }
        let _ = w.kill();
        let _ = w.wait();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
