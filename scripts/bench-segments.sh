#!/usr/bin/env bash
# Benchmark of a distributed run against one generator (issue 28): the same plan
# (RATE for DURATION, cached dashboard reads) sent by one process, then by SEGMENTS
# processes (`--segment i/N`, one `--start-at`), merged with `aimate report merge`.
# Prints both runs' achieved rate and corrected P50/P95/P99, the ratio of the merged
# percentiles to the single run's, and the generators' summed CPU against the single
# one's and against SEGMENTS whole runs at RATE/SEGMENTS each (what N generators at that
# rate cost anyway). Runs alternate ROUNDS times (this machine is shared and noisy).
#
#   scripts/bench-segments.sh [RATE=10k] [DURATION=30s] [SEGMENTS=2] [ROUNDS=2]
#
# Goals: merged P50/P95/P99 within 10 % of the single run's; summed CPU <= 1.1 x.
# Do not run it while anything compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

rate="${1:-10k}"
duration="${2:-30s}"
segments="${3:-2}"
rounds="${4:-2}"

aimate_binary

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Access log off and rate limit out of the way: this measures the generators.
generator_bench_server
target="http://127.0.0.1:$port"
# One tenant, made and seeded once: every run and every segment drives it.
key="$(curl -fsS -X POST "$target/api/admin/tenants" -H 'authorization: Bearer bench' \
  -H 'content-type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"

common=(--target "$target" --api-key "$key" --warmup 5s --duration "$duration" --weights dashboard=1)

single() {
  /usr/bin/time -f "%U %S" -o "$work/$1.cpu" "$aimate" load "${common[@]}" --stages "$rate" --out "$work/$1.json" 2>"$work/$1.txt" \
    || { cat "$work/$1.txt" >&2; exit 1; }
}

distributed() {
  local name="$1" start pids=()
  mkdir -p "$work/$name"
  # Far enough ahead for every segment to check its key and seed.
  start="$(python3 -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z")')"
  for i in $(seq 0 $((segments - 1))); do
    /usr/bin/time -f "%U %S" -o "$work/$name/segment-$i.cpu" "$aimate" load "${common[@]}" --stages "$rate" \
      --segment "$i/$segments" --start-at "$start" --out "$work/$name/segment-$i.json" 2>"$work/$name/segment-$i.txt" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work/$name"/segment-*.txt >&2; exit 1; }; done
  "$aimate" report merge "$work/$name" -o "$work/$name.json" 2>/dev/null
  cat "$work/$name"/segment-*.cpu | awk '{ u += $1; s += $2 } END { print u, s }' >"$work/$name.cpu"
}

# The same N processes at rate/N each, each a whole plan of its own (no segment, no
# shared start): what N generators at that rate cost anyway, so that the segments'
# CPU against it is what segmenting itself costs.
apart() {
  local name="$1" pids=() share
  share="$(python3 -c "import sys; r='$rate'; v=float(r[:-1])*1000 if r[-1] in 'kK' else float(r); print(round(v / $segments, 3))")"
  mkdir -p "$work/$name"
  for i in $(seq 0 $((segments - 1))); do
    /usr/bin/time -f "%U %S" -o "$work/$name/run-$i.cpu" "$aimate" load "${common[@]}" --stages "$share" \
      --out "$work/$name/run-$i.json" 2>"$work/$name/run-$i.txt" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work/$name"/run-*.txt >&2; exit 1; }; done
  cat "$work/$name"/run-*.cpu | awk '{ u += $1; s += $2 } END { print u, s }' >"$work/$name.cpu"
}

figures() {
  python3 - "$work/$1.json" "$work/$1.cpu" <<'PY'
import base64, json, sys, zlib
record = json.load(open(sys.argv[1]))
user, system = map(float, open(sys.argv[2]).read().split())
stage = record["stages"][0]
print(json.dumps({"achieved": stage["achieved_rps"], "target": stage["target_rps"],
                  "valid": stage["validity"]["valid"], "reasons": stage["validity"]["reasons"],
                  "cpu": user + system}))
PY
}

# Percentiles through the CLI's own grading of each record (report.json), so both are
# read from the same HDR histograms the same way.
percentiles() {
  "$aimate" report "$work/$1.json" --out "$work/$1-report" >/dev/null 2>&1 || true
  python3 - "$work/$1-report/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
stage = report["stages"][0]
print(json.dumps({k: stage[k] for k in ("p50_ms", "p95_ms", "p99_ms")}))
PY
}

: >"$work/results"
for round in $(seq 1 "$rounds"); do
  single "single-$round"
  distributed "split-$round"
  apart "apart-$round"
  for kind in single split; do
    printf '%s\t%s\t%s\n' "$kind" "$(figures "$kind-$round")" "$(percentiles "$kind-$round")" >>"$work/results"
  done
  printf 'apart\t%s\n' "$(cat "$work/apart-$round.cpu")" >>"$work/results"
done

python3 - "$work/results" "$segments" <<'PY'
import json, sys
runs = {"single": [], "split": [], "apart": []}
for line in open(sys.argv[1]):
    kind, *fields = line.rstrip("\n").split("\t")
    if kind == "apart":
        runs[kind].append({"cpu": sum(map(float, fields[0].split()))})
        continue
    f = json.loads(fields[0]); f.update(json.loads(fields[1])); runs[kind].append(f)
n = sys.argv[2]
for kind, label in (("single", "1 process     "), ("split", f"{n} segments    ")):
    for i, f in enumerate(runs[kind], 1):
        state = "valid" if f["valid"] else "INVALID: " + "; ".join(f["reasons"])
        print(f"round {i} {label}: {f['achieved']:.1f} of {f['target']:.0f} req/s, P50/P95/P99 "
              f"{f['p50_ms']:.2f}/{f['p95_ms']:.2f}/{f['p99_ms']:.2f} ms, CPU {f['cpu']:.1f} s ({state})")
mean = lambda kind, key: sum(f[key] for f in runs[kind]) / len(runs[kind])
for key in ("p50_ms", "p95_ms", "p99_ms"):
    ratio = mean("split", key) / mean("single", key)
    print(f"merged {key[:3].upper()} / single: {ratio:.3f} (goal within 0.90-1.10)")
print(f"summed CPU / single: {mean('split', 'cpu') / mean('single', 'cpu'):.3f} (goal <= 1.10)")
print(f"summed CPU / {n} whole runs at 1/{n} of the rate: {mean('split', 'cpu') / mean('apart', 'cpu'):.3f} "
      f"(what segmenting itself costs; {n} such runs cost {mean('apart', 'cpu') / mean('single', 'cpu'):.3f} x the single run)")
PY
