#!/usr/bin/env bash
# Validates the prometheus-operator objects (ServiceMonitor, PrometheusRule) of a
# manifest stream against their CRDs' OpenAPI schemas, which kubernetes-validate does not
# bundle: @kubernetes-models/prometheus-operator (npm) carries them, compiled with ajv.
# Installed into ~/.cache/aimate/deploy-tools/crds on first use.
#
# usage: validate-crds.sh MANIFESTS.yaml
set -euo pipefail
dir="${AIMATE_DEPLOY_TOOLS:-$HOME/.cache/aimate/deploy-tools}/crds"
models_version="6.0.0"
if ! grep -qs "\"version\": \"$models_version\"" "$dir/node_modules/@kubernetes-models/prometheus-operator/package.json"; then
  echo "validate-crds: installing @kubernetes-models/prometheus-operator $models_version" >&2
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" \
    "@kubernetes-models/prometheus-operator@$models_version" "js-yaml@4.1.0"
fi
cat >"$dir/validate.mjs" <<'JS'
import fs from "node:fs";
import yaml from "js-yaml";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

let checked = 0;
for (const doc of yaml.loadAll(fs.readFileSync(process.argv[2], "utf8"))) {
  if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
  const Model = v1[doc.kind];
  if (!Model) throw new Error(`no schema for monitoring.coreos.com/v1 ${doc.kind}`);
  try {
    new Model(doc).validate();
  } catch (error) {
    console.error(`${doc.kind}/${doc.metadata?.name}: ${error.message}`);
    process.exit(1);
  }
  console.log(`${doc.kind}/${doc.metadata.name}: valid`);
  checked++;
}
if (checked === 0) {
  console.error("no monitoring.coreos.com/v1 object found");
  process.exit(1);
}
JS
node "$dir/validate.mjs" "$(realpath "$1")"
