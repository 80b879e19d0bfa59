#!/usr/bin/env bash
# Issue-5 figure: time per epoch of every regularizer relative to clean training, measured
# side by side in one run on the same data, device and seed.
# Usage: bench/adversarial_epoch_time.sh DATA_DIR [cpu|cuda]
# Writes bench/results/adversarial_epoch_time.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/adversarial_epoch_time.sh DATA_DIR [cpu|cuda]}
DEVICE=${2:-cpu}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-train
BIN=target/release/gauntlet-train
OUT=target/bench-adv; mkdir -p "$OUT"
RESULTS=bench/results/adversarial_epoch_time.md

epoch_seconds() { # arch train method [flags...] -> mean seconds of the epochs' training steps
  local arch=$1 train=$2 method=$3; shift 3
  "$BIN" train --arch "$arch" --train "$train" --out "$OUT/$arch-$method" --device "$DEVICE" \
    --epochs 2 --adv "$method" "$@" 2>&1 >/dev/null |
    python3 -c 'import re,sys; t=[float(m.group(1)) for m in re.finditer(r"dev acc [0-9.]+%  ([0-9.]+)s", sys.stdin.read())]; print(f"{sum(t)/len(t):.2f}")'
}

# Rows go to a temporary file that replaces the results only when every run succeeded.
rm -f "$RESULTS"
ROWS=$(mktemp)
trap 'rm -f "$ROWS"' EXIT
LOAD_BEFORE=$(uptime)
{
  echo "# Time per epoch relative to clean training ($(date -u +%F), device $DEVICE, $(nproc) cores)"
  echo
  echo "- Build: \`cargo build --release\` (profile \`release\`) of commit $(git rev-parse --short HEAD)."
  echo "- Command: \`bench/adversarial_epoch_time.sh DATA $DEVICE\`; each row: \`gauntlet-train train --arch ARCH --train DATA/SET/train.tsv --epochs 2 --max-length 50 --adv METHOD\` (method defaults), the mean of the two epochs' training-step time (dev evaluation excluded)."
  echo "- Load before: \`$LOAD_BEFORE\`."
  echo
  echo "| arch | data | method | s/epoch | ratio to clean |"
  echo "|---|---|---|---|---|"
} >"$ROWS"
for spec in "word-cnn $DATA/sst2/train.tsv none dropout fgsm l2 vat unk" \
            "birnn $DATA/subj/train.tsv none dropout fgsm l2 vat" \
            "char-cnn-lstm $DATA/ag_news/train.tsv none hotflip fgsm"; do
  set -- $spec
  arch=$1 train=$2; shift 2
  clean=""
  for method in "$@"; do
    s=$(epoch_seconds "$arch" "$train" "$method" --max-length 50)
    [ -z "$clean" ] && clean=$s
    printf '| %s | %s | %s | %s | %.2f |\n' "$arch" "$(basename "$(dirname "$train")")" "$method" "$s" "$(echo "$s / $clean" | bc -l)" >>"$ROWS"
  done
done
printf '\nLoad after: `%s`.\n' "$(uptime)" >>"$ROWS"
mv "$ROWS" "$RESULTS"
cat "$RESULTS"
