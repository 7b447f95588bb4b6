#!/usr/bin/env bash
# Benchmark: a cached read with the fleet's Redis cache configured (--redis-url: L1 in
# memory, generations and L2 in Redis) against the same read with the in-memory L1
# alone, under the same wrk load in one run. Both servers share one SQLite data dir and
# serve the same tenant's GET /api/dashboard and GET /api/invoices.
#
#   scripts/bench-redis-cache.sh [DURATION=5s] [CONNECTIONS=50] [THREADS=2] [ROUNDS=5]
#
# REDIS_URL (default redis://127.0.0.1:6379) names the Redis; keys go under a prefix of
# this run's own, removed at the end. Each round runs wrk against L1-only, then against
# L1+Redis; the ratio is taken per round and the median reported.
#
# Goal (issue 12): a cached read with Redis configured costs close to an L1 hit
# (ratio near 1). Do not run it while anything compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-5s}"
connections="${2:-50}"
threads="${3:-2}"
rounds="${4:-5}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
prefix="aimate-bench:$$:"

command -v wrk >/dev/null || { echo "bench-redis-cache: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "bench-redis-cache: redis-cli is not installed" >&2; exit 2; }
redis-cli -u "$redis_url" ping >/dev/null || { echo "bench-redis-cache: no Redis at $redis_url" >&2; exit 2; }

. scripts/bench-lib.sh
aimate_binary

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  redis-cli -u "$redis_url" --scan --pattern "$prefix*" | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT


key="$("$aimate" tenant create "Bench" --data-dir "$work/data" 2>/dev/null)"
serve() {
  AIMATE_RATE_LIMIT_PER_SECOND=0 "$aimate" serve --bind "127.0.0.1:$1" --data-dir "$work/data" \
    --log-dir "$work/logs-$1" "${@:2}" >/dev/null &
  pids+=("$!")
}
l1_port="$(free_port)"
tiered_port="$(free_port)"
serve "$l1_port"
serve "$tiered_port" --redis-url "$redis_url" --redis-prefix "$prefix"
l1="http://127.0.0.1:$l1_port"
tiered="http://127.0.0.1:$tiered_port"
wait_http "$l1/api/health"
# Ready, and the cache linked to Redis (not degraded).
for _ in $(seq 1 100); do
  curl -fsS "$tiered/api/health" | grep -q '"cache":{"status":"up","kind":"memory+redis"' && break
  sleep 0.1
done
curl -fsS "$tiered/api/health" | grep -q '"cache":{"status":"up","kind":"memory+redis"' \
  || { echo "bench-redis-cache: the Redis cache never linked" >&2; exit 3; }

curl -fsS -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "$(python3 -c 'import json; print(json.dumps({"invoices":[{"customer":f"C{i%40}","amount_cents":100+i,"status":["draft","sent","paid","overdue"][i%4]} for i in range(500)]}))')" \
  "$l1/api/invoices/bulk"
for base in "$l1" "$tiered"; do
  for path in /api/dashboard /api/invoices; do
    curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$base$path"
  done
done

run_wrk() { wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Authorization: Bearer $key" "$@"; }
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "wrk -t$threads -c$connections -d$duration, $rounds rounds per path: L1 only, then L1 + Redis…"
for path in /api/dashboard /api/invoices; do
  name="${path##*/}"
  for round in $(seq 1 "$rounds"); do
    run_wrk "$l1$path" > "$work/l1.$name.$round.txt"
    run_wrk "$tiered$path" > "$work/tiered.$name.$round.txt"
    printf '  %-10s round %d: L1 only %8.0f req/s   L1 + Redis %8.0f req/s\n' "$name" "$round" \
      "$(rps "$work/l1.$name.$round.txt")" "$(rps "$work/tiered.$name.$round.txt")"
  done
done

errors="$(cat "$work"/*.txt | awk '/Non-2xx/ { n += $5 } END { print n + 0 }')"
echo
echo "== results (medians of $rounds rounds)"
for path in /api/dashboard /api/invoices; do
  name="${path##*/}"
  a="$(for r in $(seq 1 "$rounds"); do rps "$work/l1.$name.$r.txt"; done | median)"
  b="$(for r in $(seq 1 "$rounds"); do rps "$work/tiered.$name.$r.txt"; done | median)"
  ratio="$(for r in $(seq 1 "$rounds"); do python3 -c "print($(rps "$work/tiered.$name.$r.txt") / $(rps "$work/l1.$name.$r.txt"))"; done | median)"
  printf 'GET %-15s L1 only %8.0f req/s   L1 + Redis %8.0f req/s   ratio %.2f\n' "$path" "$a" "$b" "$ratio"
done
hits="$(curl -fsS "$tiered/api/metrics" | awk '/^cache_requests_total\{cache="(dashboard|invoice_list)",result="hit"\}/ { n += $2 } END { print n + 0 }')"
echo "L1 + Redis served $hits cache hits; Redis still linked: $(curl -fsS "$tiered/api/health" | grep -o '"cache":{[^}]*}')"
if [ "$errors" != 0 ]; then echo "WARNING: $errors non-2xx responses"; fi
