//! Real `redis-server` processes for the tests: own ports, own directories,
//! never the machine's Redis on 6379. Each server is started under a small
//! shell watchdog that kills it (and removes its directory when asked) as
//! soon as the test process is gone, so that no server outlives its test
//! run, even when the run is killed or statics are never dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    extra: Vec<String>,
    watchdog: Option<Child>,
    /// Removed by the watchdog once the server is gone for good.
    cleanup: Option<PathBuf>,
}

/// A port that is free now, and (for a cluster node) whose bus port
/// (+10000) is free as well.
pub fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let port = listener.local_addr().expect("local addr").port();
        if port == 6379 {
            continue;
        }
        if !with_bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisServer {
    /// Starts a server in `dir` (created if missing) with extra config
    /// arguments (`["--appendonly", "yes"]`...), and waits until it answers.
    pub fn start(dir: &Path, port: u16, extra: &[&str], cleanup: Option<&Path>) -> RedisServer {
        std::fs::create_dir_all(dir).expect("create the redis dir");
        let mut server = RedisServer {
            port,
            dir: dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            watchdog: None,
            cleanup: cleanup.map(Path::to_owned),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let parent = std::process::id();
        let mut args = format!(
            "--port {} --bind 127.0.0.1 --dir '{}' --save '' --daemonize no --protected-mode no --logfile redis.log",
            self.port,
            self.dir.display()
        );
        for a in &self.extra {
            args.push_str(&format!(" '{a}'"));
        }
        // Only when the test process is gone: a test may kill -9 the
        // server and restart it on the same directory.
        let cleanup = match &self.cleanup {
            Some(path) => format!(
                "kill -0 {parent} 2>/dev/null || rm -rf '{}'",
                path.display()
            ),
            None => String::new(),
        };
        // The watchdog: runs redis-server, and kills it once the test
        // process (our parent) has exited. It ends when redis-server does.
        let script = format!(
            "redis-server {args} & r=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             kill -9 $r 2>/dev/null; wait $r 2>/dev/null; {cleanup}"
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? scripts/test.sh installs it)");
        self.watchdog = Some(child);
        self.wait_ready();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the raw reply.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn wait_ready(&self) {
        for _ in 0..500 {
            if self.command("PING").is_some_and(|r| r.starts_with("+PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server on port {} did not start:\n{log}", self.port);
    }

    /// `kill -9` of redis-server (not a graceful shutdown: nothing is
    /// flushed that was not already).
    pub fn kill9(&mut self) {
        let pid = self.command("INFO server").and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("process_id:").map(|p| p.trim().to_owned()))
        });
        if let Some(pid) = pid {
            let _ = Command::new("kill").arg("-9").arg(&pid).status();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.wait();
        }
    }

    /// Starts the server again on the same port and directory.
    pub fn restart(&mut self) {
        if self.watchdog.is_some() {
            self.kill9();
        }
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            self.kill9();
        }
    }
}

/// A 3-master Redis Cluster without replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(base: &Path, cleanup: bool) -> RedisCluster {
        Self::start_with(base, cleanup, &[])
    }

    /// With extra config arguments for every node (e.g. AOF settings).
    pub fn start_with(base: &Path, cleanup: bool, extra: &[&str]) -> RedisCluster {
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        args.extend_from_slice(extra);
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let port = free_port(true);
                RedisServer::start(
                    &base.join(format!("node{i}")),
                    port,
                    &args,
                    cleanup.then_some(base),
                )
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Every node must agree the cluster is ok before clients connect.
    pub fn wait_ok(&self) {
        for _ in 0..1000 {
            if self.nodes.iter().all(|n| {
                n.command("CLUSTER INFO")
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the test cluster never reached cluster_state:ok");
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
