#!/usr/bin/env bash
# Issue-2 figures: train each native architecture on its reference dataset and evaluate it,
# on this machine's CPU. Usage: bench/train_figures.sh DATA_DIR [OUT_DIR]
# Writes bench/results/training.md (accuracy, loss, wall time per run).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/train_figures.sh DATA_DIR [OUT_DIR]}
OUT=${2:-target/bench-models}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-train
BIN=target/release/gauntlet-train
RESULTS=bench/results/training.md
mkdir -p "$OUT"

run() { # name arch train dev test [extra flags...]
  local name=$1 arch=$2 train=$3 dev=$4 test=$5; shift 5
  local dev_flag=(); [ -n "$dev" ] && dev_flag=(--dev "$dev")
  local start end
  start=$(date +%s.%N)
  "$BIN" train --arch "$arch" --train "$train" "${dev_flag[@]}" --out "$OUT/$name" --device cpu "$@" >"$OUT/$name.log" 2>&1
  end=$(date +%s.%N)
  local acc loss
  read -r acc loss < <("$BIN" eval --model "$OUT/$name" --data "$test" --device cpu --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.2f %.4f" % (r["accuracy"]*100, r["mean_loss"]))')
  printf '| %s | %s | %s | %s%% | %s | %.0f s |\n' "$name" "$arch" "$(basename "$(dirname "$test")")/$(basename "$test")" "$acc" "$loss" "$(echo "$end - $start" | bc)" >>"$RESULTS"
}

{
  echo "# Training figures ($(date -u +%F), $(nproc) CPU cores, CPU only)"
  echo
  echo "| run | arch | evaluated on | accuracy | mean loss | train wall time |"
  echo "|---|---|---|---|---|---|"
} >"$RESULTS"
run sst2-word-cnn word-cnn "$DATA/sst2/train.tsv" "$DATA/sst2/dev.tsv" "$DATA/sst2/dev.tsv" \
  --epochs 8 --min-count 2 --hp embedding_dim=200 --lr 5e-4 --max-length 60
run sst2glue-word-cnn word-cnn "$DATA/sst2_glue/train.tsv" "$DATA/sst2/dev.tsv" "$DATA/sst2/dev.tsv" \
  --epochs 2 --min-count 2 --max-length 60
run agnews-char-cnn-lstm char-cnn-lstm "$DATA/ag_news/train.tsv" "" "$DATA/ag_news/test.tsv" \
  --epochs 20 --lr 2e-3 --max-length 50 --max-word-length 16 --label-names World,Sports,Business,Sci/Tech
run subj-birnn birnn "$DATA/subj/train.tsv" "$DATA/subj/dev.tsv" "$DATA/subj/test.tsv" --epochs 6
cat "$RESULTS"
