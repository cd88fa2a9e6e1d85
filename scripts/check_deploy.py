#!/usr/bin/env python3
"""Cross-file checks of deploy/ that no single tool makes (run by
scripts/check-deploy.sh in its venv: jsonschema, PyYAML, kubernetes-validate).

- Grafana: every dashboard validates against deploy/grafana/dashboard.schema.json;
  panel ids unique, panels inside the grid and not overlapping, refIds unique
  per panel, every query on the provisioned datasource's uid; the datasource
  points at the compose service `prometheus`; the dashboards provider path is
  where compose mounts the dashboards.
- Compose: every bind-mounted file exists; Prometheus gets its rule files;
  every scrape target of the shipped Prometheus config is a compose service.
- Alerts: severity, summary, description and a runbook_url whose anchor is a
  heading of docs/runbook.md; each alert has a firing and a quiet case in
  the promtool unit tests.
- TOML configs shipped for systemd and Kubernetes: every key is a setting
  of config/default.toml.
- Kubernetes: every resource of the kustomization validates (strict) against
  the Kubernetes API schemas.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
passed = 0
failures = []


def check(ok, what):
    global passed
    if ok:
        passed += 1
        print(f"  ok    {what}")
    else:
        failures.append(what)
        print(f"  FAIL  {what}")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def grafana():
    print("== Grafana dashboards and provisioning")
    schema = json.loads((DEPLOY / "grafana/dashboard.schema.json").read_text())
    ds = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    sources = ds.get("datasources", [])
    check(ds.get("apiVersion") == 1 and len(sources) == 1, "one provisioned datasource")
    uid = sources[0].get("uid")
    check(sources[0].get("type") == "prometheus" and uid, f"the datasource is Prometheus with uid {uid!r}")
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    check(
        sources[0].get("url") == "http://prometheus:9090" and "prometheus" in compose["services"],
        "the datasource url names the compose service prometheus:9090",
    )
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/loyalty.yml")["providers"]
    grafana_mounts = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]]
    for prov in providers:
        path = prov["options"]["path"]
        check(
            any(m.startswith(path.rstrip("/") + "/") for m in grafana_mounts),
            f"dashboards provider path {path} is where compose mounts the dashboards",
        )
    dashboards = sorted((DEPLOY / "grafana").glob("*.json"))
    dashboards = [d for d in dashboards if d.name != "dashboard.schema.json"]
    check(len(dashboards) > 0, "at least one dashboard")
    for path in dashboards:
        d = json.loads(path.read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(d), key=str)
        check(not errors, f"{path.name} matches dashboard.schema.json" + "".join(f"\n        {e.json_path}: {e.message}" for e in errors[:5]))
        panels = list(walk_panels(d["panels"]))
        ids = [p["id"] for p in panels]
        check(len(ids) == len(set(ids)), f"{path.name}: {len(ids)} panel ids, all unique")
        rects, overlaps = [], []
        for p in panels:
            g = p["gridPos"]
            r = (g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"])
            if r[2] > 24:
                overlaps.append(f"panel {p['id']} is wider than the grid")
            for q, s in rects:
                if r[0] < s[2] and s[0] < r[2] and r[1] < s[3] and s[1] < r[3]:
                    overlaps.append(f"panels {q} and {p['id']} overlap")
            rects.append((p["id"], r))
        check(not overlaps, f"{path.name}: panels inside the grid, none overlapping {overlaps}")
        bad = []
        queries = 0
        for p in panels:
            refs = [t["refId"] for t in p.get("targets", [])]
            if len(refs) != len(set(refs)):
                bad.append(f"panel {p['id']}: duplicate refId")
            for t in p.get("targets", []):
                queries += 1
                if t["datasource"]["uid"] != uid or p.get("datasource", {}).get("uid") != uid:
                    bad.append(f"panel {p['id']} {t['refId']}: datasource uid is not {uid!r}")
        check(not bad, f"{path.name}: {queries} queries, all on datasource {uid!r} {bad}")


def compose_and_prometheus():
    print("== docker-compose.yml and the Prometheus config it mounts")
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    for name in ["redis", "loyalty", "prometheus", "grafana", "redis-exporter"]:
        check(name in services, f"compose service {name}")
    missing = []
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                if not (DEPLOY / src).exists():
                    missing.append(f"{name}: {src}")
    check(not missing, f"every bind-mounted path exists {missing}")
    redis_cmd = services["redis"]["command"]
    conf = (DEPLOY / "redis/redis.conf").read_text()
    check(
        "/usr/local/etc/redis/redis.conf" in redis_cmd
        and re.search(r"^appendonly yes", conf, re.M)
        and re.search(r"^maxmemory-policy noeviction", conf, re.M),
        "compose Redis runs deploy/redis/redis.conf (appendonly yes, noeviction)",
    )
    check("--maxmemory" in redis_cmd, "compose Redis sets maxmemory (LoyaltyRedisMemoryNearMax divides by it)")
    prom = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    prom_mounts = services["prometheus"]["volumes"]
    check(
        "./prometheus:/etc/prometheus:ro" in prom_mounts,
        "compose mounts deploy/prometheus (config and rule files) at /etc/prometheus",
    )
    for rf in prom.get("rule_files", []):
        check((DEPLOY / "prometheus" / rf).exists(), f"rule file {rf} exists next to prometheus.yml")
    for job in prom["scrape_configs"]:
        for sc in job.get("static_configs", []):
            for target in sc["targets"]:
                host = target.split(":")[0]
                check(host in services, f"scrape target {target} (job {job['job_name']}) is a compose service")
    bind = services["loyalty"]["environment"]["LOYALTY__HTTP__BIND"]
    check(bind.endswith(":8080"), f"the compose server listens on 8080 ({bind}) as scraped")


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def alerts():
    print("== alerts: runbook links and promtool unit-test coverage")
    runbook = (ROOT / "docs/runbook.md").read_text()
    anchors = {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", runbook, re.M)}
    rules = load_yaml(DEPLOY / "prometheus/alerts.yml")
    tests = load_yaml(DEPLOY / "prometheus/tests/alerts_test.yml")
    firing, quiet = set(), set()
    for t in tests["tests"]:
        for a in t.get("alert_rule_test", []):
            (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
    names = []
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            name = r["alert"]
            names.append(name)
            ann = r.get("annotations", {})
            url = ann.get("runbook_url", "")
            m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", url)
            check(
                r.get("labels", {}).get("severity") in ("page", "ticket")
                and ann.get("summary")
                and ann.get("description"),
                f"{name}: severity page|ticket, summary, description",
            )
            check(bool(m) and m.group(1) in anchors, f"{name}: runbook_url {url} is a heading of docs/runbook.md")
            check(name in firing and name in quiet, f"{name}: promtool tests where it fires and where it stays quiet")
    check(len(names) == len(set(names)), f"{len(names)} alerts, names unique")


def flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def toml_configs():
    print("== shipped TOML configs use only known settings")
    known = set(flatten(tomllib.loads((ROOT / "config/default.toml").read_text())))
    cm = load_yaml(DEPLOY / "k8s/configmap.yaml")
    configs = {
        "deploy/k8s/configmap.yaml loyalty.toml": cm["data"]["loyalty.toml"],
        "deploy/systemd/loyalty.toml": (DEPLOY / "systemd/loyalty.toml").read_text(),
    }
    for name, text in configs.items():
        try:
            keys = set(flatten(tomllib.loads(text)))
        except tomllib.TOMLDecodeError as e:
            check(False, f"{name}: {e}")
            continue
        unknown = sorted(keys - known)
        check(not unknown, f"{name}: {len(keys)} settings, all in config/default.toml {unknown}")


def kubernetes():
    print("== Kubernetes manifests against the API schemas (kubernetes-validate --strict)")
    k = load_yaml(DEPLOY / "k8s/kustomization.yaml")
    listed = k["resources"]
    on_disk = sorted(p.name for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
    check(sorted(listed) == on_disk, f"kustomization lists every manifest {on_disk}")
    kinds = set()
    for f in listed:
        for doc in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text()):
            kinds.add(doc["kind"])
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret"]:
        check(kind in kinds, f"a {kind}")
    dep = load_yaml(DEPLOY / "k8s/deployment.yaml")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check(
        c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health",
        "readiness on /ready, liveness on /health",
    )
    check("requests" in c["resources"] and "limits" in c["resources"], "resources requested and limited")
    validator = Path(sys.executable).parent / "kubernetes-validate"
    out = subprocess.run(
        [str(validator), "--strict", *[str(DEPLOY / "k8s" / f) for f in listed]],
        capture_output=True,
        text=True,
    )
    text = (out.stdout + out.stderr).strip()
    check(out.returncode == 0 and "ERROR" not in text, "every resource validates:\n        " + text.replace("\n", "\n        "))


def main():
    grafana()
    compose_and_prometheus()
    alerts()
    toml_configs()
    kubernetes()
    print(f"check_deploy: {passed} passed, {len(failures)} failed")
    if failures:
        print("failures:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
