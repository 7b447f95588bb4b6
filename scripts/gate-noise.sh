#!/usr/bin/env bash
# How often the CI gate cries wolf on this machine: RUNS quick drills of one build, then
# every run judged against the others, as the gate judges a pull request against main:
#   - against the other RUNS-1 runs as one baseline directory (the workflow's mode);
#   - against each other run alone (a single-record baseline), pairwise.
# Nothing changed between the runs, so every flagged regression is a false positive.
# Prints each drill's wall time and exit code, then both false-positive rates and the
# figures that were flagged.
#
#   scripts/gate-noise.sh [RUNS=5] [MAX_REGRESSION=10]
#
# Takes about 40 s per run. Do not run it while anything compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

runs="${1:-5}"
max_regression="${2:-10}"
aimate_binary

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for i in $(seq 1 "$runs"); do
  started=$EPOCHREALTIME
  set +e
  "$aimate" drill --quick --out-dir "$work/drill-$i" >"$work/drill-$i.log" 2>&1
  code=$?
  set -e
  took=$(python3 -c "print($EPOCHREALTIME - $started)")
  dir=$(find "$work/drill-$i" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  cp "$dir/run.json" "$work/run-$i.json"
  printf 'drill %d: %.1f s, exit %d\n' "$i" "$took" "$code"
done

# judge CURRENT BASELINE OUT: prints the flagged figures as "scope objective effect".
judge() {
  "$aimate" report "$1" --baseline "$2" --max-regression "$max_regression" --out "$3" \
    >/dev/null 2>&1 || true
  python3 - "$3/report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
for c in report.get("baseline", []):
    if c["failed"]:
        low, high = c["interval"]
        print(f'{c["scope"]} {c["objective"]}: {c["regression"]*100:+.1f} % '
              f'(95 %: {low*100:+.1f} to {high*100:+.1f} %)')
EOF
}

flagged_dir=0
flagged_pairs=0
pairs=0
figures=0
for i in $(seq 1 "$runs"); do
  others="$work/others-$i"
  mkdir -p "$others"
  for j in $(seq 1 "$runs"); do
    [ "$i" = "$j" ] && continue
    cp "$work/run-$j.json" "$others/run-$j.json"
    pairs=$((pairs + 1))
    found=$(judge "$work/run-$i.json" "$work/run-$j.json" "$work/pair-$i-$j")
    if [ -n "$found" ]; then
      flagged_pairs=$((flagged_pairs + 1))
      echo "  run $i against run $j alone:"
      echo "$found" | sed 's/^/    /'
    fi
  done
  found=$(judge "$work/run-$i.json" "$others" "$work/dir-$i")
  if [ -n "$found" ]; then
    flagged_dir=$((flagged_dir + 1))
    echo "  run $i against the other $((runs - 1)):"
    echo "$found" | sed 's/^/    /'
  fi
  figures=$(python3 -c "import json;print(len(json.load(open('$work/dir-$i/report.json')).get('baseline',[])))")
done

echo
echo "compared figures per run: $figures (--max-regression $max_regression)"
echo "false positives against the other $((runs - 1)) runs (the workflow's mode): $flagged_dir of $runs"
echo "false positives against one other run: $flagged_pairs of $pairs"
