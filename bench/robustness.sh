#!/usr/bin/env bash
# Issue-5 robustness figure: clean vs hardened bundles from bench/adversarial_epoch_time.sh,
# audited with the attack each regularizer targets, plus the paired t-test on test losses.
# Usage: bench/robustness.sh DATA_DIR [LIMIT [CHAR_LIMIT]]. Writes bench/results/robustness.md.
# Character attacks cost seconds per example on a CPU, hence their own, smaller limit.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/robustness.sh DATA_DIR [LIMIT]}")
LIMIT=${2:-500}
CHAR_LIMIT=${3:-50}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-cli -p gauntlet-train
M=target/bench-adv
RESULTS=bench/results/robustness.md
{
  echo "# Robustness of hardened models (2-epoch runs of bench/adversarial_epoch_time.sh; CPU)"
  echo
  echo "| arch | training | test data | test error | attack | success τ=0.5 | success τ=0.9 |"
  echo "|---|---|---|---|---|---|---|"
} >"$RESULTS"
row() { # arch method test attack limit
  local bundle=$M/$1-$2 err report=target/bench-adv/$1-$2-$4.json
  err=$(target/release/gauntlet-train eval --model "$bundle" --data "$3" --device cpu --json | python3 -c 'import json,sys; print("%.2f%%" % ((1-json.load(sys.stdin)["accuracy"])*100))')
  target/release/gauntlet audit --model "$bundle" --data "$3" --attack "$4" --limit "$5" --device cpu --out "$report" >"$report.log" 2>&1 \
    || { echo "audit of $bundle failed:"; cat "$report.log"; exit 1; }
  python3 - "$report" "$1" "$2" "$(basename "$(dirname "$3")")" "$err" "$4" >>"$RESULTS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); curve = {round(c["confidence"], 2): c["success_rate"] for c in r["summary"]["curve"]}
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | {sys.argv[6]} | {curve[0.5]*100:.1f}% | {curve[0.9]*100:.1f}% |")
PY
}
for method in none dropout unk; do row word-cnn $method "$DATA/sst2/test.tsv" unk "$LIMIT"; done
for method in none hotflip; do row char-cnn-lstm $method "$DATA/ag_news/test.tsv" hotflip-char "$CHAR_LIMIT"; done
{
  echo
  echo "Paired t-tests on per-example test losses (birnn on SUBJ, vanilla vs each regularizer):"
  echo
  for method in dropout fgsm l2 vat; do
    echo '```'
    target/release/gauntlet-train compare --models $M/birnn-none $M/birnn-$method --data "$DATA/subj/test.tsv" --device cpu
    echo '```'
  done
} >>"$RESULTS"
cat "$RESULTS"
