//! CPU seconds of this process and of the server, from `/proc/<pid>/stat`
//! (user + system time): what the other tenants of a shared machine barely
//! move, unlike wall-clock throughput. The server's process is found from
//! `--server-pid`, or, for a server on this machine, from the socket that
//! listens on the host's port.

use std::path::Path;

/// CPU seconds (user + system) of `pid` ("self" for this process).
pub fn seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'. utime and stime are fields 14 and 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The pid of the process listening on 127.0.0.1/localhost `port`, by the
/// listening socket's inode (`/proc/net/tcp*`) and the process holding it
/// (`/proc/*/fd`). `None` when it is not on this machine or not ours to see.
pub fn listener_pid(port: u16) -> Option<u32> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            // State 0A: LISTEN.
            (u16::from_str_radix(local_port, 16).ok()? == port && *f.get(3)? == "0A")
                .then(|| f.get(9).map(|s| s.to_string()))
                .flatten()
        })?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l == Path::new(&target)) {
                return Some(pid);
            }
        }
    }
    None
}

/// The server's pid: the one given, else the listener of a loopback host's
/// port.
pub fn server_pid(given: Option<u32>, host: &str) -> Option<u32> {
    if given.is_some() {
        return given;
    }
    let rest = host
        .strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))?;
    let authority = rest.split('/').next()?;
    let (name, port) = authority.rsplit_once(':')?;
    if !matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    listener_pid(port.parse().ok()?)
}

/// CPU of this process and of the server between two points in time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mark {
    pub client: Option<f64>,
    pub server: Option<f64>,
}

impl Mark {
    pub fn now(server_pid: Option<u32>) -> Mark {
        Mark {
            client: seconds("self"),
            server: server_pid.and_then(|p| seconds(&p.to_string())),
        }
    }

    /// CPU seconds used since `earlier`: (client, server).
    pub fn since(&self, earlier: &Mark) -> (Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        (
            d(self.client, earlier.client),
            d(self.server, earlier.server),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_and_finds_a_listener() {
        let before = seconds("self").expect("/proc/self/stat");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(seconds("self").unwrap() >= before);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        assert_eq!(
            server_pid(None, &format!("http://127.0.0.1:{port}")),
            Some(std::process::id())
        );
        assert_eq!(server_pid(None, "http://example.com:80"), None);
    }
}
