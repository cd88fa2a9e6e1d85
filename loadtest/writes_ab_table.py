#!/usr/bin/env python3
"""The table of loadtest/writes-ab.sh, from its run folder.

    python3 loadtest/writes_ab_table.py loadtest-runs/writes-ab-<stamp>

Each run folder `<setup>-<scenario>-<A|B>-<round>/` holds the tool's
`summary.json` and the script's `before.txt`/`after.txt` snapshots
(redis-server CPU ticks and INFO commandstats summed over the build's
nodes, the server's loyalty_store_round_trips_total). The snapshots span
the whole run (yardstick, warm-up and measured window), so their deltas are
divided by the run's whole request count; `/health` touches no Redis.
Server CPU per request is the tool's own (measured window only).
"""

import json
import os
import statistics as st
import sys

TICK = os.sysconf("SC_CLK_TCK")
# The store's calls: a script call is one whatever it runs inside (INFO
# commandstats counts the commands a script runs under their own names).
SCRIPT_CALLS = ("cmdstat_evalsha", "cmdstat_evalsha_ro", "cmdstat_fcall", "cmdstat_fcall_ro")
# Our own probes, not the store's.
OURS = ("cmdstat_info", "cmdstat_ping", "cmdstat_config")


def snapshot(path):
    s = {"redis_ticks": 0.0, "server_ticks": 0.0, "cmd": {}, "round_trips": None, "loadavg": ""}
    if not os.path.exists(path):
        return None
    for line in open(path):
        line = line.strip()
        if line.startswith("loadavg "):
            s["loadavg"] = line[len("loadavg "):]
        elif line.startswith("redis_ticks "):
            s["redis_ticks"] += float(line.split()[1])
        elif line.startswith("server_ticks "):
            s["server_ticks"] = float(line.split()[1])
        elif line.startswith("cmdstat_"):
            name, rest = line.split(":", 1)
            calls = int(dict(kv.split("=") for kv in rest.split(","))["calls"])
            s["cmd"][name] = s["cmd"].get(name, 0) + calls
        elif line.startswith("loyalty_store_round_trips_total"):
            s["round_trips"] = (s["round_trips"] or 0.0) + float(line.rsplit(" ", 1)[1])
    return s


def deltas(run_dir, requests):
    b, a = snapshot(os.path.join(run_dir, "before.txt")), snapshot(os.path.join(run_dir, "after.txt"))
    if not b or not a or not requests:
        return {}
    d = {k: a["cmd"].get(k, 0) - b["cmd"].get(k, 0) for k in set(a["cmd"]) | set(b["cmd"])}
    out = {
        "loadavg": b["loadavg"],
        "redis_us": (a["redis_ticks"] - b["redis_ticks"]) / TICK * 1e6 / requests,
        "scripts": sum(d.get(k, 0) for k in SCRIPT_CALLS) / requests,
        "commands": sum(v for k, v in d.items() if k not in OURS) / requests,
        "round_trips": None,
    }
    if a["round_trips"] is not None and b["round_trips"] is not None:
        out["round_trips"] = (a["round_trips"] - b["round_trips"]) / requests
    return out


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return st.mean(xs) if xs else None


def main(d):
    rows = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name, "summary.json")
        if not os.path.exists(p):
            continue
        parts = name.split("-")
        setup, build, rnd = parts[0], parts[-2], parts[-1]
        scenario = "-".join(parts[1:-2])
        s = json.load(open(p))
        s["_extra"] = deltas(os.path.join(d, name), s["client"]["whole_run_requests"])
        s["_round"] = rnd
        rows.setdefault((setup, scenario, build), []).append(s)
    print("| setup | scenario | build | ratio to /health (each run) | client p99 ms (each) | req/s | "
          "server CPU µs/req | redis-server CPU µs/req | script calls/req | Redis commands/req | "
          "store round trips/req (metric) | load average at each run's start |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    means = {}
    for (setup, scenario, build), runs in sorted(rows.items()):
        ratios = [r["ratio_to_health"] or 0 for r in runs]
        p99s = [r["client"]["p99_ms"] for r in runs]
        rps = st.mean(r["client"]["rps"] for r in runs)
        cpu = mean([r["cpu"]["server_us_per_request"] for r in runs])
        ex = [r["_extra"] for r in runs]
        redis_us = mean([e.get("redis_us") for e in ex])
        scripts = mean([e.get("scripts") for e in ex])
        commands = mean([e.get("commands") for e in ex])
        trips = mean([e.get("round_trips") for e in ex])
        means[(setup, scenario, build)] = (st.mean(ratios), rps, cpu, redis_us, st.mean(p99s))
        print(f"| {setup} | {scenario} | {build} | {st.mean(ratios):.3f} ({', '.join(f'{x:.3f}' for x in ratios)}) "
              f"| {st.mean(p99s):.1f} ({', '.join(f'{x:.1f}' for x in p99s)}) | {rps:.0f} | {fmt(cpu, '.0f')} "
              f"| {fmt(redis_us, '.0f')} | {fmt(scripts, '.2f')} | {fmt(commands, '.1f')} | {fmt(trips, '.2f')} "
              f"| {'; '.join(e.get('loadavg', '?') for e in ex)} |")
    print()
    for (setup, scenario, build), (ratio, rps, cpu, redis_us, p99) in sorted(means.items()):
        a = means.get((setup, scenario, "A"))
        if build != "B" or not a:
            continue
        cpu_ratio = fmt(cpu / a[2] if cpu and a[2] else None, ".2f")
        both = fmt((cpu + redis_us) / (a[2] + a[3]) if cpu and redis_us and a[2] and a[3] else None, ".2f")
        print(f"{setup} {scenario}: B/A throughput {rps / a[1]:.2f}, ratio to /health B/A {ratio / a[0]:.2f}, "
              f"p99 {a[4]:.1f} -> {p99:.1f} ms, server CPU per request B/A {cpu_ratio}, "
              f"server + redis-server CPU per request B/A {both}")


if __name__ == "__main__":
    main(sys.argv[1])
