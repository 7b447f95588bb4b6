#!/usr/bin/env bash
# A distributed run in containers (issue 28): three aimate containers from IMAGE, on the
# compose stack's network, each sending one segment of one plan through the stack's
# balancer from one start instant and writing its record to a shared folder; then the
# host's aimate merges the folder and grades the merged record, which must PASS.
# Called by scripts/compose-check.sh while the stack runs (COMPOSE_PROJECT_NAME,
# AIMATE_API_PORT, AIMATE_PROMETHEUS_PORT and AIMATE_ADMIN_TOKEN set).
#
# usage: compose-segments-check.sh IMAGE AIMATE_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

image="$1"
aimate="$2"
docker=/usr/bin/docker
segments=3
say() { printf '\n-- compose-segments-check: %s\n' "$*"; }
fail() { echo "compose-segments-check: FAILED: $*" >&2; exit 1; }

records="$(mktemp -d)"
# The image runs as its own non-root user: the shared folder must take its writes.
chmod 0777 "$records"
names=()
cleanup() {
  set +e
  for name in "${names[@]}"; do "$docker" rm -f "$name" >/dev/null 2>&1; done
  rm -rf "$records"
}
trap cleanup EXIT

# The run's tenants, made and seeded once before the segments start, by the image's
# `aimate load prepare` (it writes their keys, owner-only, as the image's user the
# segments run as). The stack limits each key to 200 req/s (shared by the replicas
# through Redis): three tenants at 50 req/s each. Two cached read routes, so that 20 s
# at 150 req/s decides each route's objective and the cache's (writes invalidate a
# tenant's cached reads: with three tenants' caches cold and a write in five requests,
# CI's first run read 68 % hits against the 80 % objective). The segments' writes and
# their read-back are tested end to end in tests/tests/segments.rs.
say "aimate load prepare: 3 tenants, seeded once"
"$docker" run --rm --network "${COMPOSE_PROJECT_NAME}_default" -v "$records:/records" \
  -e AIMATE_ADMIN_TOKEN="$AIMATE_ADMIN_TOKEN" "$image" \
  load prepare --target http://balancer:8080 --tenants 3 --seed-invoices 100 --seed-jobs 20 \
  --out /records/keys
start="$(date -u -d '+15 seconds' +%Y-%m-%dT%H:%M:%SZ)"
say "$segments containers, segments i/$segments of 150 req/s (5 s warm-up, 20 s steady), starting at $start"
for i in $(seq 0 $((segments - 1))); do
  name="${COMPOSE_PROJECT_NAME}-segment-$i"
  names+=("$name")
  "$docker" run -d --name "$name" --network "${COMPOSE_PROJECT_NAME}_default" \
    -v "$records:/records" "$image" \
    load --target http://balancer:8080 --stages 150 --warmup 5s --duration 20s \
    --weights dashboard=6,list_invoices=4 --keys /records/keys \
    --segment "$i/$segments" --start-at "$start" --out "/records/segment-$i.json" >/dev/null
done
for name in "${names[@]}"; do
  code=$("$docker" wait "$name")
  "$docker" logs "$name" 2>&1 | grep -E "waits for its start|stage " | sed "s/^/  $name: /" || true
  [ "$code" -eq 0 ] || { "$docker" logs "$name" 2>&1 | tail -20; fail "$name exited $code"; }
done

# Through the balancer each segment's own scrape mixes the replicas: the merge takes
# the server's series once, from the stack's Prometheus, for every instance.
say "aimate report merge (the folder, the series from Prometheus) and aimate report"
"$aimate" report merge "$records" -o "$records/merged/run.json" \
  --prometheus "http://127.0.0.1:$AIMATE_PROMETHEUS_PORT"
set +e
"$aimate" report "$records/merged/run.json" --out "$records/merged" 2>"$records/report.txt"
graded=$?
set -e
grep -E "^verdict|FAIL|INVALID" "$records/report.txt" || true
python3 - "$records/merged/run.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
stage = record["stages"][0]
config = record["run"]["config"]
assert config["tenants"] == 3 and config["tenants_prepared"], config
instances = {s["instance"] for s in record["server"] if s.get("up", True)}
assert "prometheus" in json.dumps(record["server_source"]), record["server_source"]
print(f"figure: {len(record['run']['generators'])} containers as segments, merged: "
      f"{stage['achieved_rps']:.1f} of {stage['target_rps']:.0f} req/s, "
      f"{stage['sent']} requests, valid: {stage['validity']['valid']} {'; '.join(stage['validity']['reasons'])}; "
      f"server series of {len(instances)} instance(s) from Prometheus")
PY
[ "$graded" -eq 0 ] || fail "the merged run did not grade PASS (exit $graded)"
say "passed"
