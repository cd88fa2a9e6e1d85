#!/usr/bin/env bash
# Static checks of everything in deploy/ (run by scripts/test.sh, which
# installs the tools first; a missing tool is an error, never a skip):
#   promtool check config / check rules / test rules   (Prometheus)
#   yamllint -s                                         (all YAML of deploy/)
#   docker-compose config                               (the compose file)
#   systemd-analyze verify                              (the systemd unit)
#   scripts/check_deploy.py in a venv                   (dashboard JSON schema,
#     Grafana provisioning and compose cross-references, runbook links,
#     alert test coverage, Kubernetes schemas with kubernetes-validate)
# The live proof against a real Prometheus is tests/observability.
#
# Usage: scripts/check-deploy.sh LOYALTY_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:?usage: scripts/check-deploy.sh path/to/loyalty}
for tool in promtool yamllint docker-compose systemd-analyze python3; do
    command -v "$tool" >/dev/null || { echo "check-deploy: $tool is missing (scripts/test.sh installs it)" >&2; exit 1; }
done

echo "== promtool check config deploy/prometheus/prometheus.yml (and its rule files)"
promtool check config deploy/prometheus/prometheus.yml
echo "== promtool test rules (every alert fires when it should and stays quiet otherwise)"
promtool test rules deploy/prometheus/tests/*.yml

echo "== yamllint -s deploy/"
yamllint -s -c .yamllint.yml deploy

echo "== docker-compose config (deploy/docker-compose.yml)"
docker-compose -f deploy/docker-compose.yml config -q
echo "compose file valid: services $(docker-compose -f deploy/docker-compose.yml config --services | tr '\n' ' ')"

echo "== systemd-analyze verify deploy/systemd/loyalty.service (ExecStart on the built binary)"
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
sed "s#^ExecStart=/usr/local/bin/loyalty #ExecStart=$(realpath "$binary") #" \
    deploy/systemd/loyalty.service > "$unit_dir/loyalty.service"
grep -q "^ExecStart=$(realpath "$binary") " "$unit_dir/loyalty.service" \
    || { echo "check-deploy: ExecStart of loyalty.service no longer starts with /usr/local/bin/loyalty" >&2; exit 1; }
# verify prints problems (unknown keys included) as warnings and may still
# exit 0: any output about our unit is a failure.
verify_out=$(systemd-analyze verify "$unit_dir/loyalty.service" 2>&1) || { echo "$verify_out"; exit 1; }
if grep -q "loyalty.service" <<<"$verify_out"; then
    echo "$verify_out"
    exit 1
fi
echo "loyalty.service verified"

echo "== deploy/ cross-checks and Kubernetes schemas (venv: jsonschema, PyYAML, kubernetes-validate)"
venv=target/sre-venv
if ! "$venv/bin/python" -c 'import jsonschema, yaml, kubernetes_validate' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'jsonschema>=4.18' 'PyYAML>=6' 'kubernetes-validate>=1.30'
fi
"$venv/bin/python" scripts/check_deploy.py
