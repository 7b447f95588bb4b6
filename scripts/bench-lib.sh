# Shared by the bench scripts (source it): which binary to measure, free ports, waiting
# for a server, and a PostgreSQL schema of the bench's own.

# Sets $aimate: AIMATE_BIN when given (to measure another build, e.g. two commits side
# by side), else a release build of this checkout, built before any measurement.
aimate_binary() {
  if [ -n "${AIMATE_BIN:-}" ]; then
    aimate="$AIMATE_BIN"
  else
    echo "building release binary (before any measurement)…"
    cargo build --release --quiet --bin aimate
    aimate="${CARGO_TARGET_DIR:-target}/release/aimate"
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts `aimate serve` for a bench of the generator in $work (access log off, rate
# limit out of the way, admin token `bench`); sets $port and $server_pid.
generator_bench_server() {
  port="$(free_port)"
  AIMATE_LOG=warn AIMATE_ADMIN_TOKEN=bench AIMATE_RATE_LIMIT_PER_SECOND=100000000 AIMATE_RATE_LIMIT_BURST=100000000 \
    "$aimate" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --log-dir "$work/logs" >/dev/null &
  server_pid=$!
  wait_http "http://127.0.0.1:$port/api/health"
}

# Waits up to 10 s for URL to answer 2xx.
wait_http() {
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: $1 never answered" >&2
  exit 3
}

# With DATABASE_URL set: creates schema $schema and sets $server_url to a URL that puts
# the server in it (drop it on exit with drop_bench_schema). Without: both stay empty.
bench_schema() {
  schema=""
  server_url=""
  if [ -n "${DATABASE_URL:-}" ]; then
    schema="aimate_bench_$$"
    psql -q "$DATABASE_URL" -c "CREATE SCHEMA $schema" >/dev/null
    local sep='?'
    case "$DATABASE_URL" in *\?*) sep='&' ;; esac
    server_url="${DATABASE_URL}${sep}options=-c%20search_path%3D${schema}"
  fi
}

drop_bench_schema() {
  if [ -n "${schema:-}" ]; then
    psql -q "$DATABASE_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  fi
}
