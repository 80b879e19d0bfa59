#!/usr/bin/env bash
# Issue-6 figure: forward throughput of the demo word-cnn on its three runtimes, side by side
# in one run — the native tch model, ONNX Runtime on its ONNX export, and Gauntlet's tch
# interpreter of that graph — at batch 1 and 64, CPU.
# Usage: bench/onnx_forward.sh DATA_DIR [EXAMPLES]. Writes bench/results/onnx_forward.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(realpath "${1:?usage: bench/onnx_forward.sh DATA_DIR [EXAMPLES]}")
N=${2:-512}
eval "$(scripts/bootstrap.sh 2>/dev/null)"
cargo build --release -q -p gauntlet-train -p gauntlet-backends --example forward_throughput
OUT=target/bench-onnx
rm -rf "$OUT" && mkdir -p "$OUT"
target/release/gauntlet-train export-onnx --model models/sst2-word-cnn --out "$OUT/sst2-word-cnn-onnx" >/dev/null
{
  echo "# Forward throughput: native tch vs ONNX Runtime vs the tch interpreter ($(date -u +%F), $(nproc) cores, dev profile: dependencies at opt-level 3, workspace crates at 1)"
  echo
  target/release/examples/forward_throughput models/sst2-word-cnn "$OUT/sst2-word-cnn-onnx" "$DATA/sst2/test.tsv" "$N"
} >bench/results/onnx_forward.md
cat bench/results/onnx_forward.md
