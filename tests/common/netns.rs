//! Running a scenario in a network namespace of its own, so that it may
//! cut connections with iptables without touching the machine's network:
//! the test re-executes itself (only that test) under `unshare -n`, where
//! the Redis processes and the servers it starts all live.
//!
//! Why not SIGSTOP a replica to make it lag: the kernel keeps accepting and
//! buffering the replication stream for a stopped process, and a replica
//! that is resumed (or promoted) reads it all. Dropping the master's
//! packets to the replica's port loses them for real.

use std::process::Command;

/// Set in the re-executed test process: it is inside the namespace.
const INSIDE: &str = "LOYALTY_TEST_NETNS";

/// True inside the namespace (lo is up there): run the scenario. Outside,
/// runs `test` (its full path, e.g. `lagging::a_cut_replica`) of this test
/// binary under `unshare -n`, asserts it passed and returns false. Fails
/// with a clear message where it cannot (not root, no unshare, iptables or
/// ip): a skip would read as a pass.
pub fn enter(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(
            up.is_ok_and(|s| s.success()),
            "`ip link set lo up` failed in the namespace (iproute2 installed?)"
        );
        return true;
    }
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    assert!(
        uid.as_deref().is_ok_and(|u| u.trim_ascii() == b"0"),
        "{test} needs root (a network namespace and iptables rules of its own); CI runs as root"
    );
    for tool in ["unshare", "iptables", "ip"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{test} needs `{tool}` (scripts/test.sh installs util-linux, iptables and iproute2)"
        );
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("unshare")
        .arg("-n")
        .arg(exe)
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .env(INSIDE, "1")
        .status()
        .expect("run unshare -n");
    assert!(
        status.success(),
        "{test} failed inside its network namespace (output above)"
    );
    false
}

/// Drops every packet from local port `from` to local port `to`: the
/// master's side of one replication link, when `from` is the master's port
/// and `to` the replica's end of the link.
pub fn cut(from: u16, to: u16) {
    iptables("-A", from, to);
}

/// Removes the rule [`cut`] added.
pub fn uncut(from: u16, to: u16) {
    iptables("-D", from, to);
}

fn iptables(action: &str, from: u16, to: u16) {
    let status = Command::new("iptables")
        .args([action, "OUTPUT", "-p", "tcp", "--sport", &from.to_string()])
        .args(["--dport", &to.to_string(), "-j", "DROP"])
        .status()
        .expect("run iptables");
    assert!(status.success(), "iptables refused the rule");
}
