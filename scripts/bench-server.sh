#!/usr/bin/env bash
# Benchmark: our server's cached, authenticated GET /api/dashboard against a bare hyper
# "hello" server, under the same wrk load in one run, so the machine's noise hits both.
# Prints both throughputs, their ratio, each server's CPU time per request (from /proc:
# steadier than throughput when wrk and the servers fight over two cores), our P99
# latency and our peak RSS.
#
#   scripts/bench-server.sh [DURATION=5s] [CONNECTIONS=50] [THREADS=2] [ROUNDS=5]
#
# Each round runs wrk against aimate, then against bare hyper; the ratio is taken per
# round and the median reported, so a noisy neighbour skews one round, not the result.
#
# Goals (server issue): ratio >= 0.6, our P99 <= 5 ms at -c 50, RSS <= 100 MB.
# Do not run it while anything compiles: a parallel build halves every figure.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-5s}"
connections="${2:-50}"
threads="${3:-2}"
rounds="${4:-5}"

command -v wrk >/dev/null || { echo "bench-server: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

. scripts/bench-lib.sh
aimate_binary
echo "building the bare hyper baseline (before any measurement)…"
cargo build --release --quiet -p aimate-server --example bare_hyper
target="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT


aimate_port="$(free_port)"
bare_port="$(free_port)"

# Rate limit out of the way: this measures the request path, not the limiter's 429s.
key="$("$aimate" tenant create "Bench" --data-dir "$work/data" 2>/dev/null)"
AIMATE_LOG="${AIMATE_LOG:-info}" AIMATE_RATE_LIMIT_PER_SECOND=100000000 AIMATE_RATE_LIMIT_BURST=100000000 \
  "$aimate" serve --bind "127.0.0.1:$aimate_port" --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
aimate_pid=$!
pids+=("$aimate_pid")
"$target/examples/bare_hyper" "127.0.0.1:$bare_port" >/dev/null &
bare_pid=$!
pids+=("$bare_pid")
wait_http "http://127.0.0.1:$aimate_port/api/health"
wait_http "http://127.0.0.1:$bare_port/"

# Seed a realistic dashboard and warm the cache.
curl -fsS -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "$(python3 -c 'import json; print(json.dumps({"invoices":[{"customer":f"C{i%40}","amount_cents":100+i,"status":["draft","sent","paid","overdue"][i%4]} for i in range(500)]}))')" \
  "http://127.0.0.1:$aimate_port/api/invoices/bulk"
curl -fsS -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$aimate_port/api/dashboard"

run_wrk() { wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@"; }
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
tick_us="$(python3 -c "print(1e6 / $(getconf CLK_TCK))")"
# CPU µs per request of PID over a wrk run: cpu_per_request PID TICKS_BEFORE WRK_OUTPUT.
cpu_per_request() {
  local requests
  requests="$(awk '/ requests in / { print $1 }' "$3")"
  python3 -c "print(round(($(cpu_ticks "$1") - $2) * $tick_us / $requests, 2))"
}
p99_ms() {
  awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f", v }' "$1"
}

echo "wrk -t$threads -c$connections -d$duration, $rounds rounds: aimate GET /api/dashboard, then bare hyper…"
for round in $(seq 1 "$rounds"); do
  before="$(cpu_ticks "$aimate_pid")"
  run_wrk -H "Authorization: Bearer $key" "http://127.0.0.1:$aimate_port/api/dashboard" > "$work/aimate.$round.txt"
  cpu_per_request "$aimate_pid" "$before" "$work/aimate.$round.txt" > "$work/aimate.$round.cpu"
  before="$(cpu_ticks "$bare_pid")"
  run_wrk "http://127.0.0.1:$bare_port/" > "$work/bare.$round.txt"
  cpu_per_request "$bare_pid" "$before" "$work/bare.$round.txt" > "$work/bare.$round.cpu"
  printf '  round %d: aimate %8.0f req/s (P99 %s ms, %s us CPU/req)   bare %8.0f req/s (%s us CPU/req)\n' "$round" \
    "$(rps "$work/aimate.$round.txt")" "$(p99_ms "$work/aimate.$round.txt")" "$(cat "$work/aimate.$round.cpu")" \
    "$(rps "$work/bare.$round.txt")" "$(cat "$work/bare.$round.cpu")"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ours="$(for r in $(seq 1 "$rounds"); do rps "$work/aimate.$r.txt"; done | median)"
bare="$(for r in $(seq 1 "$rounds"); do rps "$work/bare.$r.txt"; done | median)"
ratio="$(for r in $(seq 1 "$rounds"); do python3 -c "print($(rps "$work/aimate.$r.txt") / $(rps "$work/bare.$r.txt"))"; done | median)"
p99="$(for r in $(seq 1 "$rounds"); do p99_ms "$work/aimate.$r.txt"; echo; done | median)"
our_cpu="$(cat "$work"/aimate.*.cpu | median)"
bare_cpu="$(cat "$work"/bare.*.cpu | median)"
rss_kb="$(awk '/^VmHWM:/ { print $2 }' "/proc/$aimate_pid/status")"
errors="$(cat "$work"/aimate.*.txt | awk '/Non-2xx/ { n += $5 } END { print n + 0 }')"

echo
echo "== results (medians of $rounds rounds)"
printf 'aimate   GET /api/dashboard : %10.0f req/s\n' "$ours"
printf 'bare hyper "hello"         : %10.0f req/s\n' "$bare"
printf 'ratio aimate / bare        : %10.2f   (goal >= 0.60)\n' "$ratio"
printf 'CPU per request            : %10.2f us aimate, %.2f us bare (bare / aimate %.2f)\n' \
  "$our_cpu" "$bare_cpu" "$(python3 -c "print($bare_cpu / $our_cpu)")"
printf 'aimate P99                 : %10.3f ms (goal <= 5)\n' "$p99"
printf 'aimate peak RSS            : %10.1f MB (goal <= 100)\n' "$(python3 -c "print($rss_kb / 1024)")"
if [ "$errors" != 0 ]; then echo "WARNING: aimate answered $errors non-2xx responses"; fi
