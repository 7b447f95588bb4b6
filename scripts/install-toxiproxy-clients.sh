#!/usr/bin/env bash
# Installs the published Toxiproxy clients that chaos/tests/clients.rs drives the fault
# proxy with: toxiproxy-node-client (npm) and toxiproxy-python (PyPI), pinned, into
# ~/.cache/aimate/toxiproxy-clients (or $AIMATE_TOXIPROXY_CLIENTS). Without them those
# tests print that they were skipped.
set -euo pipefail

dir="${AIMATE_TOXIPROXY_CLIENTS:-$HOME/.cache/aimate/toxiproxy-clients}"
node_version="4.1.0"
python_version="0.1.1"

if [ ! -f "$dir/node/node_modules/toxiproxy-node-client/package.json" ] \
  || ! grep -q "\"version\": \"$node_version\"" "$dir/node/node_modules/toxiproxy-node-client/package.json"; then
  echo "install-toxiproxy-clients: toxiproxy-node-client $node_version"
  mkdir -p "$dir/node"
  npm install --silent --no-audit --no-fund --prefix "$dir/node" "toxiproxy-node-client@$node_version"
fi

# Read whole, not through `grep -q`: under pipefail an early exit of grep fails pip.
installed="$("$dir/python/bin/pip" show toxiproxy-python 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [ ! -x "$dir/python/bin/python" ] || [ "$installed" != "$python_version" ]; then
  echo "install-toxiproxy-clients: toxiproxy-python $python_version"
  python3 -m venv "$dir/python"
  "$dir/python/bin/pip" install -q "toxiproxy-python==$python_version"
fi
echo "install-toxiproxy-clients: ready in $dir"
