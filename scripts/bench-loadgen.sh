#!/usr/bin/env bash
# Benchmark of the load generator itself: the 10k req/s stage for 30 s against the real
# server on this machine. Prints the achieved rate, P50/P95/P99 (corrected and not), the
# generator's CPU per 1 000 requests and its peak RSS.
#
#   scripts/bench-loadgen.sh [RATE=10k] [DURATION=30s] [WEIGHTS=dashboard=1]
#
# The default mix is the cached dashboard read: what the server sustains at 10k req/s on
# two cores shared with the generator, so the figures are the generator's. Pass
# WEIGHTS (e.g. "" for the realistic mix) to load the server instead.
#
# Goals (load generator issue): achieved >= 99% of target; <= 50 ms CPU per 1 000
# requests; <= 200 MB RSS. Do not run it while anything compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

rate="${1:-10k}"
duration="${2:-30s}"
weights="${3-dashboard=1}"

aimate_binary

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port="$(free_port)"
# Access log off and rate limit out of the way: this measures the generator.
AIMATE_LOG=warn AIMATE_ADMIN_TOKEN=bench AIMATE_RATE_LIMIT_PER_SECOND=100000000 AIMATE_RATE_LIMIT_BURST=100000000 \
  "$aimate" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
server_pid=$!
wait_http "http://127.0.0.1:$port/api/health"

/usr/bin/time -v -o "$work/time.txt" "$aimate" load --target "http://127.0.0.1:$port" --admin-token bench \
  --stages "$rate" --warmup 5s --duration "$duration" --out "$work/run.json" \
  ${weights:+--weights "$weights"} 2> "$work/load.txt" || {
  cat "$work/load.txt" >&2
  exit 1
}

python3 - "$work/run.json" "$work/time.txt" <<'PY'
import base64, json, sys, zlib, struct
record = json.load(open(sys.argv[1]))
time_txt = open(sys.argv[2]).read()
def field(name):
    for line in time_txt.splitlines():
        if line.strip().startswith(name):
            return line.split(":", 1)[1].strip()
user = float(field("User time (seconds)")); system = float(field("System time (seconds)"))
rss_kb = int(field("Maximum resident set size (kbytes)"))
stage = record["stages"][0]
total_requests = sum(p["sent"] for p in stage["timeline"])
print(f"target            : {stage['target_rps']:.0f} req/s")
print(f"achieved (steady) : {stage['achieved_rps']:.1f} req/s  ({100 * stage['achieved_rps'] / stage['target_rps']:.2f}% of target; goal >= 99%)")
print(f"valid             : {stage['validity']['valid']} {'; '.join(stage['validity']['reasons'])}")
print(f"requests (all)    : {total_requests}")
print(f"generator CPU     : {user + system:.1f} s = {1000 * (user + system) / max(total_requests, 1) * 1000:.1f} ms per 1 000 requests (goal <= 50)")
print(f"generator peak RSS: {rss_kb / 1024:.1f} MB (goal <= 200)")
PY
# Percentiles come from the record's HDR histograms, through the CLI's own summary.
grep -E "stage|P95" "$work/load.txt" || true
