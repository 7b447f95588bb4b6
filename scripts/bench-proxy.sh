#!/usr/bin/env bash
# Benchmark: the fault proxy's overhead with no toxic. The same wrk load, side by side
# in one run, against the server directly and through `aimate chaos proxy`:
#   1. saturating load (-c 50): throughput through the proxy vs direct, and through the
#      proxy with an HTTP-aware toxic that matches no request
#   2. latency at a fixed 1k req/s (open model, our own `aimate load`), where queueing
#      does not hide the proxy's cost: P99 through the proxy minus P99 direct.
#
#   scripts/bench-proxy.sh [DURATION=10s] [ROUNDS=3]
#
# Goals (chaos issue): throughput >= 70% of direct; added P99 <= 1 ms; an HTTP-aware
# toxic that matches nothing costs <= 10% of the proxied throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10s}"
rounds="${2:-3}"
command -v wrk >/dev/null || { echo "bench-proxy: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

. scripts/bench-lib.sh
# AIMATE_BIN=path measures another build (e.g. the proxy before a change).
aimate_binary
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

server_port="$(free_port)"; api_port="$(free_port)"; proxy_port="$(free_port)"
key="$("$aimate" tenant create Bench --data-dir "$work/data" 2>/dev/null)"
AIMATE_LOG=warn AIMATE_RATE_LIMIT_PER_SECOND=0 "$aimate" serve --bind "127.0.0.1:$server_port" --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
pids+=("$!")
"$aimate" chaos proxy --api "127.0.0.1:$api_port" 2>/dev/null &
pids+=("$!")
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$server_port/api/health" 2>/dev/null && curl -fsS -o /dev/null "http://127.0.0.1:$api_port/version" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null -X POST -H "Content-Type: application/json" "http://127.0.0.1:$api_port/proxies" \
  -d "{\"name\":\"api\",\"listen\":\"127.0.0.1:$proxy_port\",\"upstream\":\"127.0.0.1:$server_port\"}"
curl -fsS -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$server_port/api/dashboard"

rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
p99_ms() { awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.3f", v }' "$1"; }
load() { wrk "$@" --latency -H "Authorization: Bearer $key"; }

# Rounds of the three saturating loads, interleaved, each figure the median of its
# rounds: on a shared 2-core machine a single wrk run swings by 10-20 %.
idle_toxic='{"name":"idle","type":"http_status","attributes":{"method":"PURGE","path_prefix":"/nothing","status":503}}'
for round in $(seq 1 "$rounds"); do
  echo "saturating, round $round of $rounds: wrk -t2 -c50 -d$duration direct, through the proxy, and with an HTTP toxic that matches nothing…"
  load -t2 -c50 -d"$duration" "http://127.0.0.1:$server_port/api/dashboard" > "$work/direct-$round.txt"
  load -t2 -c50 -d"$duration" "http://127.0.0.1:$proxy_port/api/dashboard" > "$work/proxied-$round.txt"
  curl -fsS -o /dev/null -X POST -H "Content-Type: application/json" \
    "http://127.0.0.1:$api_port/proxies/api/toxics" -d "$idle_toxic"
  load -t2 -c50 -d"$duration" "http://127.0.0.1:$proxy_port/api/dashboard" > "$work/http-toxic-$round.txt"
  curl -fsS -o /dev/null -X DELETE "http://127.0.0.1:$api_port/proxies/api/toxics/idle"
done
median_rps() { for f in "$work/$1"-*.txt; do rps "$f"; done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
direct_rps="$(median_rps direct)"; proxied_rps="$(median_rps proxied)"; toxic_rps="$(median_rps http-toxic)"
echo "fixed rate: aimate load --stages 1k --duration $duration (cached dashboard), direct then through the proxy…"
fixed() {
  "$aimate" load --target "$1" --api-key "$key" --stages 1k --warmup 2s --duration "$duration" \
    --weights dashboard=1 --seed-invoices 0 --seed-jobs 0 --out "$work/$2.json" 2> "$work/$2.txt"
  awk '/service time/ { print $(NF-1) }' "$work/$2.txt"
}
direct_p99="$(fixed "http://127.0.0.1:$server_port" direct-1k)"
proxied_p99="$(fixed "http://127.0.0.1:$proxy_port" proxied-1k)"

echo
echo "== results"
printf 'saturated direct   : %9.0f req/s  (median of %d)\n' "$direct_rps" "$rounds"
printf 'saturated proxied  : %9.0f req/s\n' "$proxied_rps"
printf 'throughput ratio   : %9.2f  (goal >= 0.70)\n' "$(python3 -c "print($proxied_rps / $direct_rps)")"
printf 'idle HTTP toxic    : %9.0f req/s\n' "$toxic_rps"
printf 'its cost           : %9.1f %% of proxied throughput (goal <= 10)\n' "$(python3 -c "print(100 * (1 - $toxic_rps / $proxied_rps))")"
printf '1k req/s direct    : P99 %s ms (service time)\n' "$direct_p99"
printf '1k req/s proxied   : P99 %s ms (service time)\n' "$proxied_p99"
printf 'added P99          : %9.3f ms (goal <= 1)\n' "$(python3 -c "print($proxied_p99 - $direct_p99)")"
