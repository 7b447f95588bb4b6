#!/usr/bin/env bash
# Runs deploy/compose.yaml (the guide's Stage 2) as its README commands do, and the
# graded drill of its `load` profile, on a machine that cannot pull images:
#
#   - the aimate image: IMAGE (built by scripts/deploy-check.sh, which calls this);
#   - PostgreSQL, Redis, HAProxy and Prometheus: stand-ins from Debian's packages
#     (scripts/compose-stand-ins/), keeping the official images' conventions;
#   - Grafana has no Debian package, so the stack runs without it here; its provisioning
#     files are generated and drift-tested, and the dashboard is checked against a real
#     Prometheus by monitoring/tests.
#
# Checks: every replica healthy (the image's HEALTHCHECK) before the balancer starts;
# HAProxy routes to all three, found through Docker's DNS; Prometheus scrapes each replica
# (not the balancer) as job="aimate" with the committed rules loaded; the drill through
# the balancer grades PASS (exit 0) and writes its reports to deploy/reports/; then the
# stack runs a distributed load from three containers of the image, merged and graded
# PASS (scripts/compose-segments-check.sh); then the stack with its fault proxy is
# drilled through the Docker Engine API (scripts/compose-drill-check.sh, with the
# host's dist/aimate).
#
# usage: compose-check.sh IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."

image="$1"
eval "$(scripts/install-deploy-tools.sh 2>/dev/null)"
docker=/usr/bin/docker
export DOCKER_BUILDKIT=1
say() { printf '\n-- compose-check: %s\n' "$*"; }
fail() { echo "compose-check: FAILED: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

base="aimate-local/compose-services:bookworm-1"
if ! "$docker" image inspect "$base" >/dev/null 2>&1; then
  say "making $base with mmdebstrap (PostgreSQL 15, Redis, HAProxy, Prometheus)"
  tar="$(mktemp --suffix .tar)"
  mmdebstrap --quiet --variant=minbase \
    --include=postgresql-15,postgresql-client-15,redis-server,haproxy,prometheus,wget,ca-certificates \
    bookworm "$tar"
  "$docker" import "$tar" "$base" >/dev/null
  rm -f "$tar"
fi
stand_ins=scripts/compose-stand-ins
for service in postgres redis haproxy prometheus; do
  "$docker" build --quiet --build-arg BASE="$base" --target "$service" \
    -t "aimate-local/stand-in-$service:1" "$stand_ins" >/dev/null
done

export COMPOSE_PROJECT_NAME="aimatecheck$$"
export AIMATE_IMAGE="$image"
export POSTGRES_IMAGE=aimate-local/stand-in-postgres:1
export REDIS_IMAGE=aimate-local/stand-in-redis:1
export HAPROXY_IMAGE=aimate-local/stand-in-haproxy:1
export PROMETHEUS_IMAGE=aimate-local/stand-in-prometheus:1
export AIMATE_API_PORT=$(free_port) AIMATE_STATS_PORT=$(free_port) AIMATE_PROMETHEUS_PORT=$(free_port)
export AIMATE_GRAFANA_PORT=$(free_port)
export AIMATE_ADMIN_TOKEN="compose-check-$RANDOM$RANDOM"
# The compose default `--tenants auto`: sized from the RateLimit-Policy the stack
# advertises through HAProxy (the limit is shared by the replicas through Redis).
export AIMATE_STAGES=100,1k AIMATE_WARMUP=5s AIMATE_DURATION=30s
compose=(docker compose -f deploy/compose.yaml)
reports=deploy/reports
cleanup() {
  set +e
  "${compose[@]}" --profile load down --volumes --remove-orphans >/dev/null 2>&1
}
trap cleanup EXIT

services=(aimate balancer postgres redis prometheus)
say "docker compose up -d --wait ${services[*]} (all but Grafana)"
started=$(date +%s.%N)
"${compose[@]}" up -d --wait --wait-timeout 120 "${services[@]}" \
  || { "${compose[@]}" ps; "${compose[@]}" logs --tail 20; fail "the stack did not come up healthy"; }
echo "up and healthy in $(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')") s"
"${compose[@]}" ps --format '{{.Service}}\t{{.State}}\t{{.Status}}'
replicas=$("${compose[@]}" ps --format '{{.Service}} {{.Health}}' aimate | grep -c ' healthy$' || true)
[ "$replicas" -eq 3 ] || fail "$replicas of 3 replicas healthy"

say "HAProxy routes to every replica (Docker DNS)"
for _ in $(seq 1 40); do
  up=$(curl -fsS "http://127.0.0.1:$AIMATE_STATS_PORT/;csv" | awk -F, '$1 == "aimate" && $2 ~ /^aimate-/ && $18 == "UP"' | wc -l)
  [ "$up" -eq 3 ] && break
  sleep 0.5
done
[ "$up" -eq 3 ] || fail "$up of 3 replicas UP behind HAProxy"
curl -fsS "http://127.0.0.1:$AIMATE_API_PORT/api/health" >/dev/null || fail "no answer through the balancer"
echo "3 servers UP; the API answers on the balancer"

say "Prometheus scrapes each replica as job=\"aimate\", rules loaded"
prometheus="http://127.0.0.1:$AIMATE_PROMETHEUS_PORT"
for _ in $(seq 1 60); do
  targets=$(curl -fsS "$prometheus/api/v1/query?query=up%7Bjob%3D%22aimate%22%7D%3D%3D1" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))')
  [ "$targets" -eq 3 ] && break
  sleep 1
done
[ "$targets" -eq 3 ] || fail "$targets of 3 replicas scraped up"
curl -fsS "$prometheus/api/v1/rules" | python3 -c '
import json, sys
groups = {g["name"]: len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]}
print("rule groups:", groups)
sys.exit(0 if "aimate-alerts" in groups and "aimate-recording" in groups else 1)' \
  || fail "the committed rules are not loaded"

say "the load profile: aimate drill through the balancer, graded"
rm -rf "$reports"
set +e
"${compose[@]}" --profile load run --rm load
graded=$?
set -e
[ "$graded" -eq 0 ] || fail "the drill did not grade PASS (exit $graded)"
run_json=$(find "$reports" -name run.json | head -n1)
[ -n "$run_json" ] && [ -f "$(dirname "$run_json")/index.html" ] || fail "no report in $reports"
python3 - "$run_json" <<'EOF'
import json, sys
record = json.load(open(sys.argv[1]))
for stage in record["stages"]:
    errors = sum(v for route in stage["routes"].values() for k, v in route["outcomes"].items()
                 if not k.isdigit() or int(k) >= 500 or int(k) == 429)
    print(f"figure: compose stack, stage {stage['name']}: {stage['achieved_rps']:.0f} req/s through HAProxy, {errors} errors")
EOF
echo "reports in $(dirname "$run_json")"
rm -rf "$reports"

# Three containers of the image as the segments of one distributed run (issue 28).
scripts/compose-segments-check.sh "$image" dist/aimate

# The same stack drilled as a deployment aimate did not start (issue 25).
scripts/compose-drill-check.sh dist/aimate
say "passed"
