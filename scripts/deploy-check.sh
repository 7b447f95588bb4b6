#!/usr/bin/env bash
# Builds, validates and runs the deployment (issue 24), as CI does (.ci/run calls it):
#
#   lint      hadolint on the Dockerfile; `haproxy -c` on deploy/haproxy.cfg
#   manifests the kustomize output of deploy/kubernetes/base, valid against the
#             Kubernetes 1.30 schemas and the newest kubernetes-validate bundles (--strict),
#             the prometheus-operator objects against their CRD schemas, and checkov with
#             exactly the failures deploy/kubernetes/checkov-skips.txt lists (with reasons)
#   compose   deploy/compose.yaml valid under Compose v2, with and without its profile
#   image     the Dockerfile's prebuilt stage on a Debian base made here (no registry can
#             be pulled from): what it adds on top of its base, in MB (goal <= 40)
#   run       a container on SQLite: start to ready (goal <= 1 s), idle memory; a
#             container on the machine's PostgreSQL and Redis (--network host): healthy by
#             its own HEALTHCHECK, `aimate load` from a second container at 1k req/s for
#             10 s graded PASS by `aimate report` from a third; SIGTERM during traffic:
#             exit 0 within the grace period, no 5xx; the image as `chaos proxy`
#   pod       the Deployment's pod under `podman kube play`: security settings in force,
#             probe paths 200 on PostgreSQL and Redis, exit 0 on SIGTERM
#             (scripts/kube-play-check.sh)
#   stack     deploy/compose.yaml up, with stand-ins for the images that cannot be
#             pulled, and its `load` drill graded PASS (scripts/compose-check.sh); then
#             with deploy/compose.chaos.yaml, drilled through the Docker Engine API by
#             chaos/experiments/compose (scripts/compose-drill-check.sh)
#
# Every step either passes or fails the script: nothing is skipped. Needs root (dockerd),
# PostgreSQL and Redis as .ci/run starts them (TEST_DATABASE_URL, TEST_REDIS_URL).
# Figures are printed as `figure: …` lines and written to $AIMATE_DEPLOY_FIGURES if set.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n-- deploy-check: %s\n' "$*"; }
fail() { echo "deploy-check: FAILED: $*" >&2; exit 1; }
figure() {
  echo "figure: $*"
  if [ -n "${AIMATE_DEPLOY_FIGURES:-}" ]; then echo "$*" >>"$AIMATE_DEPLOY_FIGURES"; fi
}

database_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
redis_url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
tools="${AIMATE_DEPLOY_TOOLS:-$HOME/.cache/aimate/deploy-tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aimate/target}"
eval "$(scripts/install-deploy-tools.sh)"
# Debian's client: its builder does BuildKit (the Dockerfile's cache mounts).
docker=/usr/bin/docker
export DOCKER_BUILDKIT=1
work="$(mktemp -d)"
run_id="deploycheck$$"
containers=()
dockerd_pid=""

cleanup() {
  set +e
  for c in "${containers[@]}"; do "$docker" rm -f "$c" >/dev/null 2>&1; done
  psql -q "$database_url" -c "DROP DATABASE IF EXISTS $run_id" >/dev/null 2>&1
  if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- lint
say "hadolint Dockerfile"
hadolint Dockerfile
echo "hadolint: clean"

say "haproxy -c deploy/haproxy.cfg"
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
"$haproxy" -c -f deploy/haproxy.cfg

# ---------------------------------------------------------------- manifests
say "kustomize build deploy/kubernetes/base (kubectl $(kubectl version --client | sed -n 's/^Kustomize Version: //p' | cut -d- -f1))"
kubectl kustomize deploy/kubernetes/base >"$work/stage5.yaml"
echo "$(grep -c '^kind:' "$work/stage5.yaml") objects"

newest="$(python3 - "$tools/venv" <<'EOF'
import pathlib, re, sys
# The newest Kubernetes version whose schemas kubernetes-validate bundles.
root = next(pathlib.Path(sys.argv[1]).glob("lib/python*/site-packages/kubernetes_validate/kubernetes-json-schema"))
versions = [d.name[1:].removesuffix("-local-strict") for d in root.iterdir() if re.fullmatch(r"v\d+\.\d+\.\d+-local-strict", d.name)]
print(max(versions, key=lambda v: tuple(map(int, v.split(".")))))
EOF
)"
say "kustomize build deploy/kubernetes/load (+ verdict-job.yaml): the distributed load run"
kubectl kustomize deploy/kubernetes/load >"$work/load.yaml"
{ echo "---"; cat deploy/kubernetes/load/verdict-job.yaml; } >>"$work/load.yaml"
echo "$(grep -c '^kind:' "$work/load.yaml") objects"

for version in 1.30.0 "$newest"; do
  for manifests in stage5 load; do
    say "kubernetes-validate --strict -k $version ($manifests)"
    out="$(kubernetes-validate --strict -k "$version" "$work/$manifests.yaml" 2>&1)" || { echo "$out"; fail "kubernetes-validate $version $manifests"; }
    echo "$out" | grep -v "^INFO" || true
    passed=$(echo "$out" | grep -c "passed for resource" || true)
    echo "$passed objects passed"
  done
done

say "prometheus-operator objects against their CRD schemas"
scripts/validate-crds.sh "$work/stage5.yaml"
# Everything kubernetes-validate has no schema for must have been checked there.
unknown="$(kubernetes-validate --strict -k 1.30.0 "$work/stage5.yaml" 2>&1 | sed -n 's/.*find schema for kind \([A-Za-z]*\) with api version \([^ ]*\).*/\1 \2/p' | grep -v ' monitoring.coreos.com/v1$' || true)"
[ -z "$unknown" ] || fail "no schema validated: $unknown"

say "checkov --framework kubernetes"
skips="deploy/kubernetes/checkov-skips.txt"
export BC_SKIP_MAPPING=TRUE
checkov -f "$work/stage5.yaml" -f "$work/load.yaml" --framework kubernetes --compact --quiet -o json >"$work/checkov.json" || true
python3 - "$work/checkov.json" "$skips" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
reports = report if isinstance(report, list) else [report]
failed = {}
passed = 0
for r in reports:
    passed += r["summary"]["passed"]
    for check in r["results"]["failed_checks"]:
        failed.setdefault(check["check_id"], set()).add(check["resource"])
skips = {}
for line in open(sys.argv[2]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    check, _, reason = line.partition(" ")
    if not reason.strip():
        sys.exit(f"checkov-skips.txt: {check} has no reason")
    skips[check] = reason.strip()
print(f"checkov: {passed} passed, {sum(len(v) for v in failed.values())} failed")
unexpected = sorted(set(failed) - set(skips))
stale = sorted(set(skips) - set(failed))
for check in sorted(failed):
    state = "skipped" if check in skips else "FAILED"
    print(f"  {state} {check} on {', '.join(sorted(failed[check]))}" + (f": {skips[check]}" if check in skips else ""))
if unexpected:
    sys.exit(f"checkov: failed checks not in checkov-skips.txt: {', '.join(unexpected)}")
if stale:
    sys.exit(f"checkov: checkov-skips.txt lists checks that pass now (remove them): {', '.join(stale)}")
EOF

# ---------------------------------------------------------------- compose
say "docker compose config (Compose $(docker compose version --short))"
docker compose -f deploy/compose.yaml config -q
docker compose -f deploy/compose.yaml --profile load config -q
docker compose -f deploy/compose.yaml -f deploy/compose.chaos.yaml config -q
echo "compose.yaml: valid, with and without the load profile, and with compose.chaos.yaml"

# ---------------------------------------------------------------- image
if ! "$docker" info >/dev/null 2>&1; then
  say "starting dockerd"
  dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do "$docker" info >/dev/null 2>&1 && break; sleep 0.5; done
  "$docker" info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; fail "dockerd did not start"; }
fi

# The runtime base, as distroless cc is: glibc, libgcc, CA certificates, time zones, /tmp;
# no shell, no package manager. Made once per machine from Debian's packages and kept
# (the tag names the recipe: change both together).
base_image="aimate-local/distroless-cc:bookworm-1"
if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
  say "making $base_image with mmdebstrap"
  # `extract` unpacks the packages and runs neither their scripts nor hooks, so /tmp and
  # the CA bundle (ca-certificates' postinst) are made here.
  rootfs="$work/rootfs"
  mmdebstrap --quiet --variant=extract --include=libc6,libgcc-s1,ca-certificates,netbase,tzdata \
    bookworm "$rootfs"
  mkdir -p "$rootfs/tmp" "$rootfs/etc/ssl/certs"
  chmod 1777 "$rootfs/tmp"
  cat "$rootfs"/usr/share/ca-certificates/mozilla/*.crt >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$rootfs" -c . | "$docker" import - "$base_image" >/dev/null
  rm -rf "$rootfs"
fi

say "release binary, stripped, into dist/"
cargo build --release --locked --quiet --bin aimate
mkdir -p dist
strip -o dist/aimate "$CARGO_TARGET_DIR/release/aimate"
image="aimate:ci"
say "docker build --target prebuilt"
"$docker" build --quiet --target prebuilt --build-arg RUNTIME_IMAGE="$base_image" -t "$image" . >/dev/null
base_bytes=$("$docker" image inspect -f '{{.Size}}' "$base_image")
image_bytes=$("$docker" image inspect -f '{{.Size}}' "$image")
added_mb=$(python3 -c "print(f'{($image_bytes - $base_bytes) / 1e6:.1f}')")
"$docker" history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | head -n 4
figure "image adds ${added_mb} MB on top of its base (goal <= 40 MB)"
python3 -c "import sys; sys.exit(0 if $image_bytes - $base_bytes <= 40e6 else 1)" || fail "the image adds ${added_mb} MB (> 40 MB)"
# No shell in the image: the HEALTHCHECK needs none.
if "$docker" run --rm --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then fail "the image has a shell"; fi
[ "$("$docker" image inspect -f '{{.Config.User}}' "$image")" = "65532:65532" ] || fail "the image does not run as 65532"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- run: SQLite
say "a container on SQLite: start to ready, idle memory"
port=$(free_port)
name="${run_id}-sqlite"
containers+=("$name")
started=$(now)
"$docker" run -d --name "$name" --network host -e PORT="$port" "$image" >/dev/null
until curl -fs -o /dev/null "http://127.0.0.1:$port/api/health"; do
  python3 -c "import sys; sys.exit(0 if $(now) - $started < 10 else 1)" || { "$docker" logs "$name" | tail; fail "not ready in 10 s"; }
  sleep 0.01
done
ready=$(python3 -c "print(f'{$(now) - $started:.2f}')")
figure "container start to ready on SQLite: ${ready} s, docker run included (goal <= 1 s)"
python3 -c "import sys; sys.exit(0 if $ready <= 1.0 else 1)" || fail "start to ready took ${ready} s"
sleep 2
pid=$("$docker" inspect -f '{{.State.Pid}}' "$name")
rss_mb=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
figure "idle memory (RSS) on SQLite: ${rss_mb} MiB"
"$docker" rm -f "$name" >/dev/null

# ---------------------------------------------------------------- run: PostgreSQL + Redis
say "a container on PostgreSQL and Redis, healthy by its own HEALTHCHECK"
psql -q "$database_url" -c "CREATE DATABASE $run_id" >/dev/null
server_db="${database_url%/*}/$run_id"
port=$(free_port)
name="${run_id}-server"
containers+=("$name")
token="deploy-check-$RANDOM$RANDOM"
"$docker" run -d --name "$name" --network host --stop-timeout 30 \
  -e PORT="$port" -e DATABASE_URL="$server_db" -e REDIS_URL="$redis_url" \
  -e AIMATE_REDIS_PREFIX="$run_id:" -e AIMATE_ADMIN_TOKEN="$token" \
  -e AIMATE_SHUTDOWN_DELAY=2s -e AIMATE_DRAIN_TIMEOUT=10s \
  "$image" >/dev/null
started=$(now)
health=""
for _ in $(seq 1 120); do
  health=$("$docker" inspect -f '{{.State.Health.Status}}' "$name")
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && break
  sleep 0.25
done
[ "$health" = healthy ] || { "$docker" logs "$name" | tail -20; fail "the container is $health"; }
echo "healthy after $(python3 -c "print(f'{$(now) - $started:.1f}')") s: $("$docker" inspect -f '{{(index .State.Health.Log 0).Output}}' "$name" | head -n1)"
curl -fsS "http://127.0.0.1:$port/api/health" | python3 -c 'import json,sys; h=json.load(sys.stdin); print("readiness:", h["status"], h["database"]["backend"], h["cache"]["kind"], h["cache"]["status"]); sys.exit(0 if h["database"]["backend"]=="postgres" and h["cache"]["status"]=="up" else 1)' \
  || fail "the container is not on PostgreSQL with Redis up"

# Ten tenants at 100 req/s each: the deployment keeps its per-key limit (200 req/s).
say "aimate load from a second container: 1k req/s for 10 s; aimate report from a third"
mkdir -p "$work/out" && chmod 777 "$work/out"
"$docker" run --rm --network host -v "$work/out:/out" "$image" \
  load --target "http://127.0.0.1:$port" --admin-token "$token" --tenants 10 \
  --stages 1k --warmup 2s --duration 10s --out /out/run.json
set +e
"$docker" run --rm -v "$work/out:/out" "$image" report /out/run.json --out /out/report --summary -
graded=$?
set -e
[ "$graded" -eq 0 ] || fail "the run did not grade PASS (exit $graded)"
python3 - "$work/out/run.json" <<'EOF'
import json, sys
stage = json.load(open(sys.argv[1]))["stages"][0]
print(f"figure: 1k req/s from a container: achieved {stage['achieved_rps']:.0f} req/s, {stage['sent']} requests graded")
EOF

say "SIGTERM under traffic: exit 0 within the grace period, no 5xx"
key=$(curl -fsS -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"Drain"}' "http://127.0.0.1:$port/api/admin/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
python3 scripts/drain-traffic.py "http://127.0.0.1:$port" "$key" 8 >"$work/drain.json" &
traffic=$!
sleep 1.5
stop_started=$(now)
"$docker" stop -t 30 "$name" >/dev/null
stopped=$(python3 -c "print(f'{$(now) - $stop_started:.2f}')")
wait "$traffic"
code=$("$docker" inspect -f '{{.State.ExitCode}}' "$name")
python3 - "$work/drain.json" "$code" "$stopped" <<'EOF'
import json, sys
outcomes = json.load(open(sys.argv[1]))
code, stopped = int(sys.argv[2]), float(sys.argv[3])
server_errors = {k: v for k, v in outcomes.items() if k.isdigit() and int(k) >= 500}
print(f"figure: SIGTERM to exit {stopped:.1f} s (shutdown delay 2 s, grace 30 s), exit code {code}; answers: {outcomes}")
if code != 0:
    sys.exit(f"the server exited {code} after SIGTERM")
if stopped >= 30:
    sys.exit("docker stop waited the whole grace period: the server was killed")
if server_errors:
    sys.exit(f"5xx during the drain: {server_errors}")
if outcomes.get("200", 0) == 0:
    sys.exit("no request succeeded before the stop")
EOF

say "the same image as the fault proxy: aimate chaos proxy"
port=$(free_port)
name="${run_id}-proxy"
containers+=("$name")
"$docker" run -d --name "$name" --network host "$image" \
  chaos proxy --api "127.0.0.1:$port" --token "$token" >/dev/null
for _ in $(seq 1 50); do curl -fs -o /dev/null -H "authorization: Bearer $token" "http://127.0.0.1:$port/proxies" && break; sleep 0.1; done
curl -fsS -H "authorization: Bearer $token" "http://127.0.0.1:$port/version"; echo
unauthorized=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/proxies")
[ "$unauthorized" = 401 ] || fail "the proxy's API answered $unauthorized without its token"
"$docker" stop -t 10 "$name" >/dev/null
[ "$("$docker" inspect -f '{{.State.ExitCode}}' "$name")" = 0 ] || fail "the proxy did not exit 0 on SIGTERM"
echo "control API up, refuses calls without the token, exits 0 on SIGTERM"

# ---------------------------------------------------------------- pod
say "the Deployment's pod under podman kube play (scripts/kube-play-check.sh)"
scripts/kube-play-check.sh "$work/stage5.yaml" "$image" "$database_url" "$redis_url" 2>&1 \
  | grep -v 'unable to get systemd connection' || fail "the Deployment's pod"

# ---------------------------------------------------------------- compose stack
say "the compose stack, run (scripts/compose-check.sh)"
scripts/compose-check.sh "$image"

say "all passed"
