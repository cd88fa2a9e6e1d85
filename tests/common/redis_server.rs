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
    /// A config file given first (a sentinel's, which it rewrites).
    conf: Option<PathBuf>,
    watchdog: Option<Child>,
    /// Removed by the watchdog once the server is gone for good.
    cleanup: Option<PathBuf>,
    /// The pid of the redis-server this handle started, from its log: a
    /// kill goes to it only while it still answers on our port, never to
    /// another test's server that took the port after ours died.
    pid: Option<String>,
}

/// redis-server could not bind its port (or its cluster bus port): another
/// process took it between [`free_port`] and the bind.
struct PortTaken;

/// Ports tried for one server before giving up.
const PORT_TRIES: usize = 5;

/// A port that is free now, and (for a cluster node) whose bus port
/// (+10000) is free as well. Only now: it comes from the ephemeral range,
/// where any process's next outgoing connection may take it before the
/// server binds it — tests running in parallel make many (sentinels,
/// replicas, redis-cli). A server that loses its port that way is started
/// again on another ([`RedisServer::start`]) rather than leaving the test
/// talking to whatever holds it.
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
        let server = RedisServer {
            port,
            dir: dir.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            conf: None,
            watchdog: None,
            cleanup: cleanup.map(Path::to_owned),
            pid: None,
        };
        server.first_launch()
    }

    /// Launches on `self.port`, or on another port if that one was taken
    /// before redis-server could bind it. (A restart cannot move: replicas
    /// and sentinels know the port.)
    fn first_launch(mut self) -> RedisServer {
        let cluster = self.extra.iter().any(|a| a == "--cluster-enabled");
        for _ in 0..PORT_TRIES {
            match self.launch() {
                Ok(()) => return self,
                Err(PortTaken) => self.port = free_port(cluster),
            }
        }
        panic!(
            "redis-server in {} lost its port to another process {PORT_TRIES} times",
            self.dir.display()
        );
    }

    /// Launches on `self.port`, which must be free now (a restart).
    fn relaunch(&mut self) {
        if self.launch().is_err() {
            panic!(
                "port {} was taken by another process while its redis-server was down",
                self.port
            );
        }
    }

    fn launch(&mut self) -> Result<(), PortTaken> {
        let parent = std::process::id();
        let conf = match &self.conf {
            Some(c) => format!("'{}' --sentinel ", c.display()),
            None => String::new(),
        };
        let mut args = format!(
            "{conf}--port {} --bind 127.0.0.1 --dir '{}' --save '' --daemonize no --protected-mode no --logfile redis.log",
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
        // What this launch logs starts here (a restart appends).
        let log_from = std::fs::metadata(self.dir.join("redis.log")).map_or(0, |m| m.len());
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? scripts/test.sh installs it)");
        self.watchdog = Some(child);
        self.wait_ready(log_from)
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

    /// What this launch logged (from `log_from` on).
    fn log_since(&self, log_from: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("redis.log")) {
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(log_from)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    /// Until our redis-server answers on the port. A PING alone could be
    /// answered by another test's server holding the port ours could not
    /// bind: ours must also have said, in its own log, that it is up.
    fn wait_ready(&mut self, log_from: u64) -> Result<(), PortTaken> {
        for _ in 0..500 {
            let log = self.log_since(log_from);
            if log.contains("Failed listening on port")
                || log.contains("Could not create server TCP listening socket")
            {
                // redis-server exits; so does its watchdog.
                if let Some(mut w) = self.watchdog.take() {
                    let _ = w.wait();
                }
                return Err(PortTaken);
            }
            let up = log.contains("Ready to accept connections") || log.contains("+monitor master");
            if up && self.command("PING").is_some_and(|r| r.starts_with("+PONG")) {
                self.pid = log
                    .split("pid=")
                    .nth(1)
                    .and_then(|rest| rest.split(',').next())
                    .map(str::to_owned);
                return Ok(());
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
        // Only ours (see `pid`; unknown: the old behaviour).
        let ours = match self.pid.take() {
            Some(mine) => pid.filter(|p| *p == mine),
            None => pid,
        };
        if let Some(pid) = ours {
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
        self.relaunch();
    }

    /// Starts it again with `more` config arguments this time only (e.g.
    /// `["--replicaof", "127.0.0.1", "7000"]`).
    pub fn restart_with(&mut self, more: &[&str]) {
        if self.watchdog.is_some() {
            self.kill9();
        }
        let kept = self.extra.clone();
        self.extra.extend(more.iter().map(|s| s.to_string()));
        self.relaunch();
        self.extra = kept;
    }

    /// A sentinel (redis-server in sentinel mode) in `dir`, monitoring the
    /// master `name` at `master_port` with `quorum`, quick to act: down
    /// after 1 s without an answer, a failover attempt bounded by 3 s.
    pub fn start_sentinel(
        dir: &Path,
        port: u16,
        name: &str,
        master_port: u16,
        quorum: u8,
        cleanup: Option<&Path>,
    ) -> RedisServer {
        std::fs::create_dir_all(dir).expect("create the sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 1\n"
            ),
        )
        .expect("write sentinel.conf");
        let server = RedisServer {
            port,
            dir: dir.to_owned(),
            extra: Vec::new(),
            conf: Some(conf),
            watchdog: None,
            cleanup: cleanup.map(Path::to_owned),
            pid: None,
        };
        server.first_launch()
    }

    /// The lines of an inline command's reply that are values (bulk
    /// strings and integers), in order.
    pub fn values(&self, cmd: &str) -> Vec<String> {
        let reply = self.command(cmd).unwrap_or_default();
        let mut out = Vec::new();
        let mut lines = reply.split("\r\n");
        while let Some(line) = lines.next() {
            if line.starts_with('$') && line != "$-1" {
                if let Some(v) = lines.next() {
                    out.push(v.to_owned());
                }
            } else if let Some(i) = line.strip_prefix(':') {
                out.push(i.to_owned());
            } else if let Some(simple) = line.strip_prefix('+') {
                out.push(simple.to_owned());
            }
        }
        out
    }

    /// `role:master` or `role:slave`, as `INFO replication` says (`None`:
    /// no answer).
    pub fn role(&self) -> Option<String> {
        let info = self.command("INFO replication")?;
        info.lines()
            .find_map(|l| l.strip_prefix("role:").map(|r| r.trim().to_owned()))
    }
}

/// A master, one replica and three sentinels (quorum 2) on loopback, for
/// the failover tests: every process on its own port, in its own directory
/// under `base`, stopped with the test process.
pub struct RedisSentinelSet {
    pub name: String,
    /// The data nodes: the first master is `nodes[0]`, its replica
    /// `nodes[1]`; which is the master now is [`RedisSentinelSet::master`].
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

/// Bounded waits of these tests: 60 s in steps of 50 ms.
const WAIT_STEPS: u32 = 1200;

impl RedisSentinelSet {
    /// `extra`: config arguments for both data nodes (AOF settings...).
    pub fn start(base: &Path, cleanup: bool, extra: &[&str]) -> RedisSentinelSet {
        let clean = cleanup.then_some(base);
        let primary = RedisServer::start(&base.join("node0"), free_port(false), extra, clean);
        let master_port = primary.port.to_string();
        let mut replica_args = extra.to_vec();
        replica_args.extend_from_slice(&["--replicaof", "127.0.0.1", &master_port]);
        let replica =
            RedisServer::start(&base.join("node1"), free_port(false), &replica_args, clean);
        let name = "loyalty-master".to_owned();
        let sentinels = (0..3)
            .map(|i| {
                RedisServer::start_sentinel(
                    &base.join(format!("sentinel{i}")),
                    free_port(false),
                    &name,
                    primary.port,
                    2,
                    clean,
                )
            })
            .collect();
        let set = RedisSentinelSet {
            name,
            nodes: vec![primary, replica],
            sentinels,
        };
        set.wait_settled();
        set
    }

    /// The sentinels' URLs, as `store.sentinel.urls` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The port of the master the (first answering) sentinel names.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let v = s.values(&format!("SENTINEL get-master-addr-by-name {}", self.name));
            v.get(1).and_then(|p| p.parse().ok())
        })
    }

    /// The index in `nodes` of the master the sentinels name.
    pub fn master(&self) -> usize {
        let port = self.master_port().expect("a sentinel names the master");
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("the master is one of the set's nodes")
    }

    /// Until the replica is in sync, every sentinel knows the replica and
    /// the two other sentinels (else a failover could lack its quorum or
    /// its candidate).
    pub fn wait_settled(&self) {
        let master = self.master_port().map(|p| p.to_string());
        for _ in 0..WAIT_STEPS {
            let synced = self.nodes.iter().filter(|n| {
                n.command("INFO replication")
                    .is_some_and(|r| r.contains("master_link_status:up"))
            });
            let known = self.sentinels.iter().all(|s| {
                let replicas = s
                    .command(&format!("SENTINEL replicas {}", self.name))
                    .unwrap_or_default();
                let peers = s
                    .command(&format!("SENTINEL sentinels {}", self.name))
                    .unwrap_or_default();
                // Two peers: their entries' "name" fields.
                replicas.contains("flags\r\n$5\r\nslave\r\n")
                    && peers.matches("\r\nname\r\n").count() >= 2
            });
            if synced.count() >= 1 && known && self.master_port().map(|p| p.to_string()) == master {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the sentinel set never settled (replica in sync, sentinels know each other)");
    }

    /// Until every replica has everything the master has written
    /// (replication is asynchronous: a replica promoted before would lack
    /// the last writes). Tests that mean to lose nothing call it before a
    /// kill; tests about what a lagging replica loses do not.
    pub fn wait_in_sync(&self) {
        let field = |n: &RedisServer, name: &str| {
            n.command("INFO replication").and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            })
        };
        let m = self.master();
        for _ in 0..WAIT_STEPS {
            let target = field(&self.nodes[m], "master_repl_offset:");
            let caught_up = self.nodes.iter().enumerate().all(|(i, n)| {
                i == m
                    || (field(n, "master_link_status:").as_deref() == Some("up")
                        && field(n, "slave_repl_offset:") == target)
            });
            if target.is_some() && caught_up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the replicas never caught up with the master");
    }

    /// `kill -9` of the current master; answers its index in `nodes`.
    pub fn kill9_master(&mut self) -> usize {
        let i = self.master();
        self.nodes[i].kill9();
        i
    }

    /// Until the sentinels name another master than `old` (a port) and
    /// that node says it is one; answers its index.
    pub fn wait_promotion(&self, old: u16) -> usize {
        for _ in 0..WAIT_STEPS {
            if let Some(port) = self.master_port().filter(|p| *p != old) {
                if let Some(i) = self.nodes.iter().position(|n| n.port == port) {
                    if self.nodes[i].role().as_deref() == Some("master") {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no replica was promoted after the master at port {old} died");
    }

    /// Starts the killed node `i` again as a replica of the current
    /// master, and waits until it is in sync and the sentinels know it.
    /// The master is the one a majority of the sentinels names, and not
    /// node `i`: just after a promotion one sentinel may still name the
    /// killed master, and a node restarted as a replica of itself never
    /// syncs (CI saw this wait run out).
    pub fn restart_as_replica(&mut self, i: usize) {
        let own = self.nodes[i].port;
        let mut master = self.promoted_master(own);
        self.nodes[i].restart_with(&["--replicaof", "127.0.0.1", &master.to_string()]);
        for step in 0..WAIT_STEPS {
            if self.nodes[i]
                .command("INFO replication")
                .is_some_and(|r| r.contains("master_link_status:up"))
            {
                self.wait_settled();
                return;
            }
            // Every 5 s: follow the master the sentinels name now.
            if step % 100 == 99 {
                let now = self.promoted_master(own);
                if now != master {
                    self.nodes[i].command(&format!("REPLICAOF 127.0.0.1 {now}"));
                    master = now;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the restarted node never synced with the new master (port {master})");
    }

    /// The port a majority of the sentinels names as the master, once one
    /// other than `not` has it: the quorum's word, which the others follow
    /// by their hello messages. Not every sentinel: one that answers late
    /// or still names the killed master for a while (a busy machine, a
    /// sentinel in TILT) held a CI run here for 60 s, while the master it
    /// is waited for was long promoted.
    fn promoted_master(&self, not: u16) -> u16 {
        let majority = self.sentinels.len() / 2 + 1;
        let mut named: Vec<Option<u16>> = Vec::new();
        for _ in 0..WAIT_STEPS {
            named = self
                .sentinels
                .iter()
                .map(|s| {
                    s.values(&format!("SENTINEL get-master-addr-by-name {}", self.name))
                        .get(1)
                        .and_then(|p| p.parse().ok())
                })
                .collect();
            let agreed = named.iter().flatten().copied().find(|port| {
                *port != not && named.iter().filter(|p| **p == Some(*port)).count() >= majority
            });
            if let Some(port) = agreed {
                return port;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no majority of the sentinels named a promoted master other than {not}: they named {named:?}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            self.kill9();
        }
    }
}

/// A 3-master Redis Cluster, without replicas unless started by
/// [`RedisCluster::start_with_replicas`] (then one replica per master; the
/// failover helpers are in `cluster_failover.rs`).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(base: &Path, cleanup: bool) -> RedisCluster {
        Self::start_with(base, cleanup, &[])
    }

    /// With extra config arguments for every node (e.g. AOF settings).
    pub fn start_with(base: &Path, cleanup: bool, extra: &[&str]) -> RedisCluster {
        Self::create(base, cleanup, extra, 0)
    }

    /// 3 masters with one replica each (6 nodes; `redis-cli --cluster
    /// create` pairs them). `extra` may override the node timeout (a later
    /// argument wins): failover tests want it short.
    pub fn start_with_replicas(base: &Path, cleanup: bool, extra: &[&str]) -> RedisCluster {
        Self::create(base, cleanup, extra, 1)
    }

    fn create(base: &Path, cleanup: bool, extra: &[&str], replicas: usize) -> RedisCluster {
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        args.extend_from_slice(extra);
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
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
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
