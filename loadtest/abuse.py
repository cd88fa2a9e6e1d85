#!/usr/bin/env python3
"""Re-measures the denial-of-service findings of issue 28 (items 3-5)
against a release binary on loopback. A measurement, not a test: run by
hand, it prints one line per number.

    loadtest/abuse.py [BIN]        # BIN defaults to target/release/loyalty

Each scenario starts a fresh server (memory store, demo users, HTTPS with a
throw-away self-signed certificate made by `openssl`) on free ports, and
stops it. Attack traffic comes from other loopback addresses (127.0.x.y),
the victim's requests from 127.0.0.1. Python standard library only.
"""

import base64
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/loyalty")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(login, password):
    return base64.b64encode(f"{login}:{password}".encode()).decode()


class Server:
    def __init__(self, workdir, nofile=None, extra=""):
        self.port, self.tls_port = free_port(), free_port()
        cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
        if not os.path.exists(cert):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                check=True, capture_output=True)
        config = os.path.join(workdir, "abuse.toml")
        with open(config, "w") as f:
            f.write(f"""[http]
bind = "127.0.0.1:{self.port}"
workers = 2
{extra}
[http.tls]
bind = "127.0.0.1:{self.tls_port}"
cert_file = "{cert}"
key_file = "{key}"
[auth]
users_file = "{ROOT}/config/demo-users.toml"
[demo]
data_file = ""
[log]
level = "warn"
""")
        cmd = [BIN, "serve", "--config", config]
        if nofile:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + cmd
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(workdir, "server.log"), "a"))
        for _ in range(200):
            if self.health(timeout=0.5):
                return
            time.sleep(0.05)
        raise SystemExit("the server did not start")

    def health(self, timeout=5.0, src="127.0.0.1"):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout,
                                          source_address=(src, 0)) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def https_health(self, timeout=5.0):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=timeout) as raw:
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def login_seconds(self, login="admin", timeout=300):
        """One uncached login from 127.0.0.1: seconds until answered."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall((f"GET /api/card/balance/by/7000000000001 HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Basic {basic(login, login + '-demo')}\r\n"
                       f"Connection: close\r\n\r\n").encode())
            head = s.recv(64)
        return time.monotonic() - started, head.split(b"\r\n")[0].decode()

    def rss_mib_and_fds(self):
        pid = self.proc.pid
        if not os.path.exists(f"/proc/{pid}/fd"):
            return None, None
        # prlimit execs the server in place: the pid is the server's.
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def send_and_hang_up(port, n, addresses):
    for i in range(n):
        src = f"127.0.{1 + (i % addresses) // 250}.{1 + (i % addresses) % 250}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5,
                                          source_address=(src, 0)) as s:
                s.sendall((f"GET /api/card/balance/by/7000000000001 HTTP/1.1\r\nHost: x\r\n"
                           f"Authorization: Basic {basic(f'user-{i}', f'guess-{i}')}\r\n\r\n").encode())
        except OSError:
            pass


def argon2_flood(workdir):
    print("== item 3: send-and-hang-up requests, then an uncached admin login")
    for n, addresses in [(1000, 1), (1000, 100), (10000, 1), (10000, 1000)]:
        srv = Server(workdir)
        try:
            started = time.monotonic()
            send_and_hang_up(srv.port, n, addresses)
            sent = time.monotonic() - started
            rss, fds = srv.rss_mib_and_fds()
            took, status = srv.login_seconds()
            rss2, fds2 = srv.rss_mib_and_fds()
            print(f"{n} requests from {addresses} address(es) (sent in {sent:.2f} s): "
                  f"admin answered in {took:.2f} s ({status}); server RSS {rss:.0f}/{rss2:.0f} MiB, "
                  f"descriptors {fds}/{fds2} (after the flood / after the login)")
        finally:
            srv.stop()


def slowloris(workdir):
    print("== item 4: one /health, then one byte of a second request; server with 300 descriptors")
    srv = Server(workdir, nofile=300)
    try:
        held = []
        for i in range(276):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5,
                                             source_address=("127.0.0.2", 0))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                s.recv(4096)
                s.sendall(b"G")
                held.append(s)
            except OSError:
                pass
        print(f"slow sockets from one address accepted: {len(held)} of 276 "
              f"(cap http.max_connections_per_address)")
        probes = sum(srv.health(timeout=3, src="127.0.0.3") for _ in range(4))
        print(f"new connections from another address during the attack: {probes} of 4 answered")
        started = time.monotonic()
        open_ = list(held)
        deadline = started + 60
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.settimeout(0)
                try:
                    data = s.recv(4096)
                    if data == b"" or data.startswith(b"HTTP/1.1 408"):
                        s.close()
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    continue
                still.append(s)
            open_ = still
            time.sleep(0.05)
        print(f"slow sockets cut: {len(held) - len(open_)} of {len(held)}, the last after "
              f"{time.monotonic() - started:.1f} s (request_head_timeout_ms = 5000)")
        for s in open_:
            s.close()
        # One socket trickling a second head at a byte per second.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        started = time.monotonic()
        cut = None
        for b in b"GET /health HTTP/1.1\r\nX: " + b"y" * 100:
            try:
                s.sendall(bytes([b]))
                s.settimeout(1.0)
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    cut = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except OSError:
                cut = time.monotonic() - started
                break
        s.close()
        print(f"a second head trickled at 1 byte/s: cut after "
              f"{'%.1f s' % cut if cut else 'never (100 s)'}")
    finally:
        srv.stop()


def tls_flood(workdir):
    print("== item 5: silent TCP connections to the HTTPS port, then 4 plain HTTP and 4 HTTPS probes")
    for n, addresses in [(2000, 1), (2000, 10)]:
        srv = Server(workdir)
        try:
            silent = []
            for i in range(n):
                try:
                    silent.append(socket.create_connection(
                        ("127.0.0.1", srv.tls_port), timeout=5,
                        source_address=(f"127.0.3.{1 + i % addresses}", 0)))
                except OSError:
                    pass
            http = sum(srv.health(timeout=5) for _ in range(4))
            https = sum(srv.https_health(timeout=5) for _ in range(4))
            print(f"{len(silent)} silent connections from {addresses} address(es): "
                  f"plain HTTP {http} of 4, HTTPS {https} of 4 answered")
            for s in silent:
                s.close()
        finally:
            srv.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="loyalty-abuse-") as d:
        print(f"binary: {BIN}; load: {open('/proc/loadavg').read().split()[:3]}")
        argon2_flood(d)
        slowloris(d)
        tls_flood(d)
