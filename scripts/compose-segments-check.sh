#!/usr/bin/env bash
# A distributed run in containers (issue 28): three aimate containers from IMAGE, on the
# compose stack's network, each sending one segment of one plan through the stack's
# balancer from one start instant and writing its record to a shared folder; then the
# host's aimate merges the folder and grades the merged record, which must PASS.
# Called by scripts/compose-check.sh while the stack runs (COMPOSE_PROJECT_NAME,
# AIMATE_API_PORT and AIMATE_ADMIN_TOKEN set).
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

# One tenant, made once before the segments start; the stack limits each key to
# 200 req/s (shared by the replicas through Redis), so the plan stays under it. Three
# routes, a write among them, so that 20 s at 150 req/s decides each route's objective;
# the server's series from the stack's Prometheus (through the balancer, a scrape would
# mix the replicas), read by every segment alike and kept once by the merge.
key=$(curl -fsS -X POST "http://127.0.0.1:$AIMATE_API_PORT/api/admin/tenants" \
  -H "authorization: Bearer $AIMATE_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"distributed run"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
start="$(date -u -d '+15 seconds' +%Y-%m-%dT%H:%M:%SZ)"
say "$segments containers, segments i/$segments of 150 req/s (5 s warm-up, 20 s steady), starting at $start"
for i in $(seq 0 $((segments - 1))); do
  name="${COMPOSE_PROJECT_NAME}-segment-$i"
  names+=("$name")
  "$docker" run -d --name "$name" --network "${COMPOSE_PROJECT_NAME}_default" \
    -v "$records:/records" -e AIMATE_API_KEY="$key" "$image" \
    load --target http://balancer:8080 --stages 150 --warmup 5s --duration 20s \
    --weights dashboard=6,list_invoices=2,create_invoice=2 \
    --prometheus http://prometheus:9090 \
    --seed-invoices 100 --seed-jobs 20 --segment "$i/$segments" --start-at "$start" \
    --out "/records/segment-$i.json" >/dev/null
done
for name in "${names[@]}"; do
  code=$("$docker" wait "$name")
  "$docker" logs "$name" 2>&1 | grep -E "waits for its start|stage " | sed "s/^/  $name: /" || true
  [ "$code" -eq 0 ] || { "$docker" logs "$name" 2>&1 | tail -20; fail "$name exited $code"; }
done

say "aimate report merge (the folder) and aimate report"
"$aimate" report merge "$records" -o "$records/merged/run.json"
set +e
"$aimate" report "$records/merged/run.json" --out "$records/merged" 2>"$records/report.txt"
graded=$?
set -e
grep -E "^verdict|FAIL|INVALID" "$records/report.txt" || true
python3 - "$records/merged/run.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
stage = record["stages"][0]
print(f"figure: {len(record['run']['generators'])} containers as segments, merged: "
      f"{stage['achieved_rps']:.1f} of {stage['target_rps']:.0f} req/s, "
      f"{stage['sent']} requests, valid: {stage['validity']['valid']} {'; '.join(stage['validity']['reasons'])}")
PY
[ "$graded" -eq 0 ] || fail "the merged run did not grade PASS (exit $graded)"
say "passed"
