#!/usr/bin/env bash
# Benchmark of the load generator itself: the 10k req/s stage for 30 s against the real
# server on this machine. Prints the achieved rate, P50/P95/P99 (corrected and not), the
# generator's CPU per 1 000 requests and its peak RSS.
#
#   scripts/bench-loadgen.sh [RATE=10k] [DURATION=30s] [WEIGHTS=dashboard=1]
#   scripts/bench-loadgen.sh --live-cost [RATE=10k] [DURATION=30s] [ROUNDS=2]
#
# The default mix is the cached dashboard read: what the server sustains at 10k req/s on
# two cores shared with the generator, so the figures are the generator's. Pass
# WEIGHTS (e.g. "" for the realistic mix) to load the server instead.
#
# --live-cost: the cost of watching a run (issue 26). Runs alternate, ROUNDS times each:
# without --live, and with --live and a page connected to its event stream the whole
# run (a client reading /events, which costs the generator what a browser does: every
# frame serialized once, written to it, and the verdict so far graded every 2 s while a
# page watches). Prints each run's CPU per 1 000 requests and the ratio of the means.
#
# Goals: achieved >= 99% of target; <= 50 ms CPU per 1 000 requests; <= 200 MB RSS; a
# watched run costs <= 2 % more CPU per 1 000 requests. Do not run it while anything
# compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

live_cost=""
if [ "${1:-}" = "--live-cost" ]; then
  live_cost=1
  shift
fi
rate="${1:-10k}"
duration="${2:-30s}"
if [ -n "$live_cost" ]; then
  rounds="${3:-2}"
  weights="dashboard=1"
else
  weights="${3-dashboard=1}"
fi

aimate_binary

work="$(mktemp -d)"
server_pid=""
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Access log off and rate limit out of the way: this measures the generator.
generator_bench_server

# One run of the generator; LIVE=1 serves the live view with a page reading it.
# Writes $work/<name>.{json,time,txt}.
one_run() {
  local name="$1" live="$2"
  local live_args=()
  if [ "$live" = 1 ]; then
    local live_port
    live_port="$(free_port)"
    live_args=(--live "127.0.0.1:$live_port")
    # The page: connects as soon as the view is up and reads until the run ends.
    (until curl -sN "http://127.0.0.1:$live_port/events" > "$work/$name.events" 2>/dev/null; do
      sleep 0.05
    done) &
    client_pid=$!
  fi
  /usr/bin/time -v -o "$work/$name.time" "$aimate" load --target "http://127.0.0.1:$port" --admin-token bench \
    --stages "$rate" --warmup 5s --duration "$duration" --out "$work/$name.json" \
    ${weights:+--weights "$weights"} "${live_args[@]}" 2> "$work/$name.txt" || {
    cat "$work/$name.txt" >&2
    exit 1
  }
  if [ "$live" = 1 ]; then
    wait "$client_pid" 2>/dev/null || true
    client_pid=""
  fi
}

# Figures of one run as a JSON line: cpu per 1 000 requests, achieved share, RSS, frames.
figures() {
  python3 - "$work/$1.json" "$work/$1.time" "$work/$1.events" <<'PY'
import json, os, sys
record = json.load(open(sys.argv[1]))
time_txt = open(sys.argv[2]).read()
def field(name):
    for line in time_txt.splitlines():
        if line.strip().startswith(name):
            return line.split(":", 1)[1].strip()
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
stage = record["stages"][0]
requests = sum(p["sent"] for p in stage["timeline"])
frames = 0
if os.path.exists(sys.argv[3]):
    frames = sum(1 for line in open(sys.argv[3]) if line.startswith("event: "))
print(json.dumps({
    "cpu_s": cpu, "requests": requests, "ms_per_1k": 1e6 * cpu / max(requests, 1),
    "target_rps": stage["target_rps"], "achieved_rps": stage["achieved_rps"],
    "achieved": stage["achieved_rps"] / stage["target_rps"], "valid": stage["validity"]["valid"],
    "reasons": stage["validity"]["reasons"], "rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024,
    "frames": frames,
}))
PY
}

if [ -n "$live_cost" ]; then
  : > "$work/results"
  for round in $(seq 1 "$rounds"); do
    for live in 0 1; do
      name="round$round-live$live"
      one_run "$name" "$live"
      line="$(figures "$name")"
      echo "$live $line" >> "$work/results"
      python3 - "$live" "$line" "$round" <<'PY'
import json, sys
live, f, round_ = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
kind = "watched  " if live == "1" else "unwatched"
page = f", {f['frames']} frames read by the page" if live == "1" else ""
print(f"round {round_} {kind}: {f['ms_per_1k']:.2f} ms CPU per 1 000 requests, "
      f"{100 * f['achieved']:.2f}% of target, RSS {f['rss_mb']:.0f} MB{page}")
PY
    done
  done
  python3 - "$work/results" <<'PY'
import json, sys
runs = {"0": [], "1": []}
for line in open(sys.argv[1]):
    live, figures = line.split(" ", 1)
    runs[live].append(json.loads(figures))
mean = lambda xs: sum(x["ms_per_1k"] for x in xs) / len(xs)
plain, watched = mean(runs["0"]), mean(runs["1"])
print(f"unwatched: {plain:.2f} ms per 1 000 requests (mean of {len(runs['0'])})")
print(f"watched  : {watched:.2f} ms per 1 000 requests (mean of {len(runs['1'])})")
print(f"cost of a page watching: {100 * (watched / plain - 1):+.2f}% CPU per 1 000 requests (goal <= +2%)")
if not all(r["frames"] > 0 for r in runs["1"]):
    print("warning: a watched run's page read no frames")
PY
  exit 0
fi

one_run single 0
python3 - "$(figures single)" <<'PY'
import json, sys
f = json.loads(sys.argv[1])
print(f"target            : {f['target_rps']:.0f} req/s")
print(f"achieved (steady) : {f['achieved_rps']:.1f} req/s  ({100 * f['achieved']:.2f}% of target; goal >= 99%)")
print(f"valid             : {f['valid']} {'; '.join(f['reasons'])}")
print(f"requests (all)    : {f['requests']}")
print(f"generator CPU     : {f['cpu_s']:.1f} s = {f['ms_per_1k']:.1f} ms per 1 000 requests (goal <= 50)")
print(f"generator peak RSS: {f['rss_mb']:.1f} MB (goal <= 200)")
PY
# Percentiles come from the record's HDR histograms, through the CLI's own summary.
grep -E "stage|P95" "$work/single.txt" || true
