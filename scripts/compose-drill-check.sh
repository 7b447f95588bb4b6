#!/usr/bin/env bash
# Drills the Stage 2 compose stack that scripts/compose-check.sh brought up, as an SRE
# drills a deployment aimate did not start (issue 25): the stack is re-upped with
# deploy/compose.chaos.yaml (the replicas' PostgreSQL and Redis links through `aimate
# chaos proxy`), then, with the host's aimate and the Docker Engine API:
#
#   refusal   a selector that matches no container, or more than the file allows:
#             exit 2 before anything is touched
#   keeper    aimate SIGKILLed while a replica is paused: the lease keeper unpauses it
#             within a few seconds
#   drill     `aimate drill --target … --experiments chaos/experiments/compose`: a short
#             ladder, then freeze, database latency, Redis stopped and a replica killed,
#             each graded PASS with 0 lost writes, time(detect) from the stack's own
#             Prometheus; afterwards every container runs unpaused and no toxic is left
#
# usage: compose-drill-check.sh AIMATE_BINARY   (the compose-check.sh environment)
set -euo pipefail
cd "$(dirname "$0")/.."

aimate="$1"
docker=/usr/bin/docker
say() { printf '\n-- compose-drill-check: %s\n' "$*"; }
fail() { echo "compose-drill-check: FAILED: $*" >&2; exit 1; }
figure() {
  echo "figure: $*"
  if [ -n "${AIMATE_DEPLOY_FIGURES:-}" ]; then echo "$*" >>"$AIMATE_DEPLOY_FIGURES"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

: "${COMPOSE_PROJECT_NAME:?run by compose-check.sh}"
project="$COMPOSE_PROJECT_NAME"
export AIMATE_CHAOS_API_PORT=$(free_port)
export AIMATE_CHAOS_TOKEN="drill-check-$RANDOM$RANDOM"
compose=(docker compose -f deploy/compose.yaml -f deploy/compose.chaos.yaml)
api="http://127.0.0.1:$AIMATE_API_PORT"
proxy_api="http://127.0.0.1:$AIMATE_CHAOS_API_PORT"
prometheus="http://127.0.0.1:$AIMATE_PROMETHEUS_PORT"
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
# Every deployment flag the drills need, as an SRE would pass them.
reach=(--target "$api" --proxy-api "$proxy_api" --proxy-token "$AIMATE_CHAOS_TOKEN"
       --prometheus "$prometheus" --admin-token "$AIMATE_ADMIN_TOKEN")
access=("${reach[@]}" --compose-project "$project")

paused() {
  "$docker" ps -q --filter "label=com.docker.compose.project=$project" --filter status=paused | wc -l
}
all_running() {
  local total running
  total=$("$docker" ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.oneoff=False" | wc -l)
  running=$("$docker" ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.oneoff=False" --filter status=running | wc -l)
  [ "$total" -eq "$running" ] && [ "$(paused)" -eq 0 ]
}

say "the stack with its fault proxy (deploy/compose.chaos.yaml)"
services=(faults aimate balancer postgres redis prometheus)
"${compose[@]}" up -d --wait --wait-timeout 120 "${services[@]}" \
  || { "${compose[@]}" ps; "${compose[@]}" logs --tail 20 faults aimate; fail "the stack did not come up healthy with its fault proxy"; }
curl -fsS -H "Authorization: Bearer $AIMATE_CHAOS_TOKEN" "$proxy_api/proxies" | python3 -c '
import json, sys
proxies = json.load(sys.stdin)
print("fault proxies:", ", ".join(n + " -> " + p["upstream"] for n, p in sorted(proxies.items())))
sys.exit(0 if {"database", "redis"} <= set(proxies) else 1)' || fail "the fault proxy lacks its links"
for _ in $(seq 1 40); do
  curl -fs -o /dev/null "$api/api/health" && break
  sleep 0.5
done
curl -fsS -o /dev/null "$api/api/health" || fail "the API does not answer through the proxied links"

say "refusal: a selector that matches nothing"
set +e
out="$("$aimate" chaos run chaos/experiments/compose/1-freeze-instance.toml "${reach[@]}" \
  --compose-project "nosuch$project" --out-dir "$reports/refused" 2>&1)"
code=$?
set -e
echo "$out" | tail -n 2
[ "$code" -eq 2 ] || fail "a selector matching nothing exited $code, not 2"
echo "$out" | grep -q "no container matches" || fail "the refusal does not say why"
[ ! -d "$reports/refused" ] || [ -z "$(find "$reports/refused" -name run.json)" ] || fail "a refused run wrote a record"
sed 's/^instances = 3 .*/instances = 2/' chaos/experiments/compose/1-freeze-instance.toml >"$reports/two.toml"
set +e
out="$("$aimate" chaos run "$reports/two.toml" "${access[@]}" --out-dir "$reports/refused" 2>&1)"
code=$?
set -e
echo "$out" | tail -n 1
[ "$code" -eq 2 ] || fail "a selector matching more than the file allows exited $code, not 2"
echo "$out" | grep -q "3 containers match .* more than the experiment allows (2)" || fail "the refusal does not say why"
all_running || fail "a refused run touched a container"

say "keeper: aimate SIGKILLed mid-freeze"
"$aimate" chaos run chaos/experiments/compose/1-freeze-instance.toml "${access[@]}" \
  --out-dir "$reports/killed" >"$reports/killed.log" 2>&1 &
drill=$!
for _ in $(seq 1 120); do
  [ "$(paused)" -gt 0 ] && break
  kill -0 "$drill" 2>/dev/null || { tail -n 20 "$reports/killed.log"; fail "the drill ended before it paused a replica"; }
  sleep 0.5
done
[ "$(paused)" -gt 0 ] || { tail -n 20 "$reports/killed.log"; fail "no replica was paused within 60 s"; }
sleep 1
kill -KILL "$drill"
killed_at=$(date +%s.%N)
wait "$drill" 2>/dev/null || true
until [ "$(paused)" -eq 0 ]; do
  python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $killed_at < 10 else 1)" \
    || fail "the paused replica is still paused 10 s after aimate was SIGKILLed"
  sleep 0.1
done
unpaused=$(python3 -c "print(f'{$(date +%s.%N) - $killed_at:.2f}')")
figure "compose: aimate SIGKILLed mid-freeze, the keeper unpaused the replica ${unpaused} s later"
all_running || fail "a container is not running after the keeper's undo"

say "drill: the ladder, then chaos/experiments/compose against the stack"
set +e
"$aimate" drill "${access[@]}" --experiments chaos/experiments/compose \
  --stages 100 --warmup 5s --duration 30s --out-dir "$reports/drill"
graded=$?
set -e
run_dir=$(find "$reports/drill" -mindepth 1 -maxdepth 1 -type d | head -n1)
python3 - "$run_dir" <<'EOF'
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
experiments = sorted(run.glob("chaos-*/run.json"))
if len(experiments) != 4:
    sys.exit(f"{len(experiments)} experiment records, expected 4")
for path in experiments:
    record = json.load(open(path))
    report = json.load(open(path.parent / "report.json"))
    experiment = record["run"]["config"]["experiment"]
    writes = record["writes"]
    faults = [e for e in record["events"] if e["kind"] == "fault"]
    fault = {g["objective"].split(" ")[0]: g for g in report["grades"] if " fault " in g["scope"]}
    detect = [g for g in report["grades"] if g["objective"].startswith("time(detect)")]
    print(f"figure: compose: {path.parent.name}: {report['verdict']}, {len(faults)} fault(s) "
          f"({'; '.join(f['detail'] for f in faults)}), writes {writes['acknowledged']} acknowledged, "
          f"{writes['missing']} missing; {len(experiment['touched'])} named before it; in the fault: "
          f"availability {fault['ratio(available)']['value']:.2f} %, P95 {fault['p(95)']['value']:.1f} ms"
          + "".join(f"; {g['objective']}: {g['value']} {g['unit']} ({g['verdict']})" for g in detect))
    if report["verdict"] != "PASS":
        sys.exit(f"{path.parent.name}: verdict {report['verdict']}")
    if writes["missing"] != 0 or writes["acknowledged"] == 0:
        sys.exit(f"{path.parent.name}: writes {writes}")
    if not faults or not experiment["touched"]:
        sys.exit(f"{path.parent.name}: no fault injected, or nothing named before it")
EOF
[ "$graded" -eq 0 ] || fail "the drill did not grade PASS (exit $graded)"
all_running || fail "a container is not running, or paused, after the drill"
left=$(curl -fsS -H "Authorization: Bearer $AIMATE_CHAOS_TOKEN" "$proxy_api/proxies/database/toxics")
[ "$left" = "[]" ] || fail "toxics left on the database link: $left"
say "passed"
