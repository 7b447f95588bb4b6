#!/usr/bin/env bash
# Contract test: Redocly's recommended rules on the server's own OpenAPI document, then
# schemathesis generates requests from it and checks every answer against it (no 5xx,
# only documented status codes, bodies and content types as documented). Runs against a live `aimate serve` with a tenant key, on
# SQLite, and on PostgreSQL too when DATABASE_URL is set.
#
#   scripts/contract-test.sh [EXAMPLES=30]
#
# AIMATE_BIN picks the binary (default: a debug build); SCHEMATHESIS_SEED fixes the
# generated cases (CI pins it so a red run is reproducible; unset for fresh cases).
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${1:-30}"
target="${CARGO_TARGET_DIR:-target}"
venv="${SCHEMATHESIS_VENV:-$HOME/.cache/aimate/schemathesis}"
# Pinned: a new release can add checks, and CI must not turn red by itself.
version="4.32.5"

if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
  echo "contract-test: installing schemathesis $version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

# Redocly's recommended ruleset on the same document (npm; pinned for the same reason).
redocly_dir="${REDOCLY_DIR:-$HOME/.cache/aimate/redocly}"
redocly_version="2.77.0"
redocly="$redocly_dir/node_modules/.bin/redocly"
if ! "$redocly" --version 2>/dev/null | grep -qx "$redocly_version"; then
  echo "contract-test: installing @redocly/cli $redocly_version into $redocly_dir"
  mkdir -p "$redocly_dir"
  npm install --prefix "$redocly_dir" --silent --no-audit --no-fund "@redocly/cli@$redocly_version"
fi
if [ -z "${AIMATE_BIN:-}" ]; then
  cargo build --quiet --bin aimate
fi
aimate="${AIMATE_BIN:-$target/debug/aimate}"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One run of schemathesis against a fresh server; extra `serve` flags in "$@".
run_against() {
  local name="$1"; shift
  local port admin key
  port="$(free_port)"
  admin="contract-$RANDOM$RANDOM"
  rm -rf "$work/data"
  AIMATE_LOG=warn "$aimate" serve --bind "127.0.0.1:$port" --data-dir "$work/data" \
    --log-dir "$work/logs" --admin-token "$admin" "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/api/health" 2>/dev/null && break
    sleep 0.1
  done
  key="$(curl -fsS -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"contract $name\"}" "http://127.0.0.1:$port/api/admin/tenants" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')"
  if [ "$name" = sqlite ]; then
    echo "== redocly lint (recommended rules) on /api/openapi.json"
    mkdir -p "$work/lint"
    curl -fsS "http://127.0.0.1:$port/api/openapi.json" >"$work/lint/openapi.json"
    # The ignore file lists the accepted exceptions, each with its reason.
    cp scripts/redocly/.redocly.lint-ignore.yaml "$work/lint/"
    (cd "$work/lint" && NO_UPDATE_NOTIFIER=1 REDOCLY_TELEMETRY=off "$redocly" lint openapi.json --format stylish 2>&1 | grep -v '[║╔╚]') \
      || { echo "contract-test: redocly lint failed" >&2; return 1; }
  fi
  echo "== schemathesis against $name ($examples examples per operation)"
  local seed=()
  [ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")
  local status=0
  "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --header "Authorization: Bearer $key" --max-examples "$examples" "${seed[@]}" --no-color \
    || status=$?
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  if [ "$status" != 0 ]; then
    echo "contract-test: schemathesis failed against $name; the server's log:" >&2
    tail -n 20 "$work/server.log" >&2
    return "$status"
  fi
}

run_against sqlite
if [ -n "${DATABASE_URL:-}" ]; then
  schema="contract_$RANDOM$RANDOM"
  psql -q "$DATABASE_URL" -c "CREATE SCHEMA $schema"
  separator='?'; case "$DATABASE_URL" in *\?*) separator='&' ;; esac
  status=0
  run_against postgresql --database-url "$DATABASE_URL${separator}options=-c%20search_path%3D$schema" || status=$?
  PGOPTIONS="--client-min-messages=warning" psql -q "$DATABASE_URL" -c "DROP SCHEMA $schema CASCADE"
  exit "$status"
fi
