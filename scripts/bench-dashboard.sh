#!/usr/bin/env bash
# Benchmark: an uncached GET /api/dashboard for a tenant with 1,000 invoices and one with
# 100,000, in one run against one server. Each read follows a write that invalidates the
# dashboard (a new job), so every read is a miss (checked against cache_requests_total).
# Prints median and P95 per tenant and the ratio of the medians.
#
#   scripts/bench-dashboard.sh [READS=300]
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test scripts/bench-dashboard.sh
#
# Goal (issue 9): median at 100k / median at 1k <= 1.5 (the dashboard reads aggregates,
# never the invoices). Do not run it while anything compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

reads="${1:-300}"

aimate_binary

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  drop_bench_schema
  rm -rf "$work"
}
trap cleanup EXIT

bench_schema

port="$(free_port)"
env -u DATABASE_URL AIMATE_LOG=warn AIMATE_ADMIN_TOKEN=bench AIMATE_RATE_LIMIT_PER_SECOND=0 \
  ${server_url:+DATABASE_URL="$server_url"} \
  "$aimate" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
server_pid=$!
wait_http "http://127.0.0.1:$port/api/health"

python3 - "$port" "$reads" <<'PY'
import http.client, json, random, statistics, sys, time
port, reads = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)

def call(method, path, key, body=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None

def tenant(name):
    return call("POST", "/api/admin/tenants", "bench", {"name": name})["api_key"]

def metric(name, labels):
    conn.request("GET", "/api/metrics")
    text = conn.getresponse().read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name) and all(x in l for x in labels))

rng = random.Random(7)
def invoice():
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {"customer": f"C{rng.randint(0, 500)}", "amount_cents": rng.randint(100, 10**6),
            "currency": rng.choice(["USD", "EUR", "GBP"]), "status": rng.choice(["draft", "sent", "paid", "overdue"]),
            "issued_on": day, "due_on": day}

sizes = {"1k": 1_000, "100k": 100_000}
keys = {}
for name, size in sizes.items():
    keys[name] = tenant(f"bench {name}")
    started = time.time()
    for _ in range(size // 1000):
        call("POST", "/api/invoices/bulk", keys[name], {"invoices": [invoice() for _ in range(1000)]})
    print(f"seeded {size:>7} invoices for tenant {name} in {time.time() - started:.1f} s")

misses_before = metric("cache_requests_total", ['cache="dashboard"', 'result="miss"'])
latency = {name: [] for name in sizes}
job = {"customer": "bench", "title": "invalidate", "scheduled_on": "2026-12-01"}
for i in range(reads):
    for name in (("1k", "100k") if i % 2 == 0 else ("100k", "1k")):
        call("POST", "/api/jobs", keys[name], job)  # a write: the next read is a miss
        started = time.perf_counter()
        body = call("GET", "/api/dashboard", keys[name])
        latency[name].append(time.perf_counter() - started)
        assert sum(body["invoices_by_status"].values()) == sizes[name], body
misses = metric("cache_requests_total", ['cache="dashboard"', 'result="miss"']) - misses_before
print(f"dashboard reads: {2 * reads}, cache misses: {misses:.0f} (every read uncached: {misses == 2 * reads})")
def p95(values):
    return sorted(values)[int(0.95 * len(values)) - 1]
for name in sizes:
    print(f"uncached dashboard at {sizes[name]:>7} invoices: median {1e3 * statistics.median(latency[name]):.3f} ms, P95 {1e3 * p95(latency[name]):.3f} ms")
ratio = statistics.median(latency["100k"]) / statistics.median(latency["1k"])
print(f"ratio 100k / 1k (medians): {ratio:.2f} (goal <= 1.5)")
PY
