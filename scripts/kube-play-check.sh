#!/usr/bin/env bash
# Runs the Stage 5 Deployment's pod with `podman kube play` (no cluster can run here) and
# checks what a cluster would enforce and probe: it runs as 65532 on a read-only root
# with every capability dropped and no privilege escalation, writes only to its
# emptyDirs, takes its settings from the ConfigMap, answers 200 on each probe's path on
# PostgreSQL and Redis, and exits 0 on SIGTERM after its shutdown delay.
#
# What is changed for podman, and why: the pod shares the host's network (PostgreSQL and
# Redis listen on loopback here), so the port is a free one and the probes name it by
# number (podman refuses port mappings on the host network); the image is the local one,
# never pulled; the Secret's values are given inline (podman 4.3 cannot read a
# secretKeyRef). podman turns probes into curl health checks, which a shell-less image
# cannot run: the probe paths are requested from outside instead.
#
# usage: kube-play-check.sh MANIFESTS.yaml DOCKER_IMAGE DATABASE_URL REDIS_URL
set -euo pipefail
cd "$(dirname "$0")/.."

manifests="$1" image="$2" database_url="$3" redis_url="$4"
python="${AIMATE_DEPLOY_TOOLS:-$HOME/.cache/aimate/deploy-tools}/venv/bin/python"
work="$(mktemp -d)"
db="aimate_pod_$$"
fail() { echo "kube-play-check: FAILED: $*" >&2; exit 1; }
# Debian's podman starts containers only with ulimits below its defaults here.
printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
cleanup() {
  set +e
  podman kube down "$work/pod.yaml" >/dev/null 2>&1
  psql -q "$database_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

/usr/bin/docker save "$image" | podman load -q >/dev/null
psql -q "$database_url" -c "CREATE DATABASE $db" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$python" - "$manifests" "$work/pod.yaml" "localhost/$image" "$port" \
  "${database_url%/*}/$db" "$redis_url" >"$work/probes.txt" <<'EOF'
import sys, yaml
source, target, image, port, database_url, redis_url = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(source)) if d]
secrets = {"database-url": database_url, "redis-url": redis_url, "admin-token": "kube-play-check"}
out = []
for doc in docs:
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "aimate":
        doc["data"]["PORT"] = port
        out.append(doc)
    elif doc["kind"] == "Deployment":
        pod = doc["spec"]["template"]["spec"]
        pod["hostNetwork"] = True
        (container,) = pod["containers"]
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"
        named = {p["name"]: p["containerPort"] for p in container.pop("ports")}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            get["port"] = int(port) if get["port"] in named else get["port"]
            print(get["path"])
        for env in container["env"]:
            ref = env.pop("valueFrom")["secretKeyRef"]
            env["value"] = secrets[ref["key"]]
        out.append(doc)
yaml.safe_dump_all(out, open(target, "w"))
EOF

podman kube play --replace "$work/pod.yaml" >/dev/null
container=$(podman ps --format '{{.Names}}' | grep -- '-api$' | head -n1 || true)
[ -n "$container" ] || fail "no container started"
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fs -o /dev/null "$base/health" && break; sleep 0.2; done
while read -r path; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base$path")
  echo "probe path $path: $code"
  [ "$code" = 200 ] || fail "$path answered $code"
done <"$work/probes.txt"
curl -fsS "$base/api/health" | python3 -c '
import json, sys
h = json.load(sys.stdin)
print("readiness:", h["status"], h["database"]["backend"], h["cache"]["kind"], h["cache"]["status"])
sys.exit(0 if h["database"]["backend"] == "postgres" and h["cache"]["status"] == "up" else 1)' \
  || fail "not on PostgreSQL with Redis up"

podman inspect "$container" --format '{{json .}}' | python3 -c '
import json, sys
c = json.load(sys.stdin)
c = c[0] if isinstance(c, list) else c
host = c["HostConfig"]
checks = {
    "runs as 65532": c["Config"]["User"] == "65532:65532",
    "read-only root": host["ReadonlyRootfs"] is True,
    "no capability left": not host.get("CapAdd") and "CAP_NET_RAW" in host["CapDrop"] and "CAP_CHOWN" in host["CapDrop"],
    "no privilege escalation": "no-new-privileges" in (host.get("SecurityOpt") or []),
    "emptyDirs at /data and /tmp": {m["Destination"] for m in c["Mounts"]} >= {"/data", "/tmp"},
}
for name, ok in checks.items():
    print(name + (": yes" if ok else ": NO"))
sys.exit(0 if all(checks.values()) else 1)' || fail "the pod does not run as the Deployment says"

pod=$(podman inspect "$container" --format '{{.Pod}}')
started=$(date +%s.%N)
podman pod stop -t 40 "$pod" >/dev/null
stopped=$(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')")
code=$(podman inspect "$container" --format '{{.State.ExitCode}}')
echo "figure: the pod's SIGTERM to exit: ${stopped} s (shutdown delay 10 s), exit code $code"
[ "$code" = 0 ] || fail "the server exited $code after SIGTERM"
