#!/usr/bin/env bash
# Trains 300-d word2vec vectors (skip-gram, negative sampling) on the train.tsv files of the
# shared corpora, to initialise word models (Kim CNN non-static: `gauntlet-train train
# --embeddings target/vectors/word2vec-shared-300d.txt`). No pretrained vectors can be
# downloaded here, so these stand in for Kim's Google News vectors. Reads only
# DATA_DIR/{sst2,sst2_glue,mr,subj,ag_news,imdb}/train.tsv (never dev/test, never
# textfooler_1000); see tools/train_vectors.py for the tokenization (the word codec's) and the
# reproducibility notes (two workers: close, not bit-identical, between runs).
# Installs pinned gensim (PyPI wheels) into the tools venv under $GAUNTLET_CACHE (default
# ~/.cache/gauntlet) once. Usage: bench/word_vectors.sh DATA_DIR (e.g. ../shared/data).
# Writes target/vectors/word2vec-shared-300d.txt (+ .json) and bench/results/word_vectors.md.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bench/word_vectors.sh DATA_DIR" >&2; exit 2; }
DATA_ARG=$1
DATA=$(cd "$DATA_ARG" && pwd)
cd "$(dirname "$0")/.."

RESULTS=bench/results/word_vectors.md
OUT=target/vectors/word2vec-shared-300d.txt
DIM=300 WINDOW=5 MIN_COUNT=2 EPOCHS=5 SEED=1 WORKERS=2
# gensim 4.4.0 is the first release with numpy 2 wheels; scipy, smart_open and wrapt are the
# versions pip resolved for it on CPython 3.11, pinned so the environment is fixed.
PINS=(gensim==4.4.0 numpy==2.4.6 scipy==1.17.1 smart_open==9.0.2 wrapt==2.5.2)
rm -f "$RESULTS" "$OUT.md.part"

CACHE="${GAUNTLET_CACHE:-$HOME/.cache/gauntlet}"
VENV="$CACHE/tools-venv"
STAMP="$VENV/.gauntlet-gensim-4.4.0"
if [ ! -f "$STAMP" ]; then
  mkdir -p "$CACHE"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  echo "word_vectors: installing ${PINS[*]} into $VENV (once)" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --only-binary=:all: "${PINS[@]}" >&2
  touch "$STAMP"
fi
PY="$VENV/bin/python"
"$PY" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    have = version(name)
    if have != want:
        sys.exit(f"word_vectors: {name} {have} is installed, {want} is pinned (remove the stamp to reinstall)")
PY

mkdir -p "$(dirname "$OUT")" bench/results
LOAD_BEFORE=$(uptime)
START=$(date +%s.%N)
PYTHONHASHSEED=0 "$PY" tools/train_vectors.py "$DATA" "$OUT" --dim "$DIM" --window "$WINDOW" \
  --min-count "$MIN_COUNT" --epochs "$EPOCHS" --seed "$SEED" --workers "$WORKERS" >"$OUT.log"
END=$(date +%s.%N)
LOAD_AFTER=$(uptime)
cat "$OUT.log"

"$PY" - "$OUT" "$DATA_ARG" "$START" "$END" "$LOAD_BEFORE" "$LOAD_AFTER" >"$OUT.md.part" <<'PY'
import json, os, sys, time
out, data_arg, start, end, load_before, load_after = sys.argv[1:]
m = json.load(open(out + ".json", encoding="utf-8"))
p = m["parameters"]
v = m["versions"]
wall = float(end) - float(start)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# word2vec vectors on the shared corpora ({time.strftime('%Y-%m-%d', time.gmtime(float(end)))})")
print()
print(f"Command: `bench/word_vectors.sh {data_arg}`, which ran")
print(f"`python {m['command']}` (with PYTHONHASHSEED=0).")
print()
print(f"Vectors: `{out}` (word2vec text, {m['vocabulary_size']} words x {p['dim']}, "
      f"{os.path.getsize(out) / 1e6:.0f} MB, SHA-256 `{m['vectors_sha256'][:16]}…`); "
      f"metadata in `{out}.json`. Use with `gauntlet-train train --embeddings {out}`.")
print()
print(f"gensim {v['gensim']}, numpy {v['numpy']}, scipy {v['scipy']}, Python {v['python']} "
      f"(gensim FAST_VERSION {v['gensim_fast_version']}).")
print(f"Machine: {os.cpu_count()} CPUs ({cpu}); `uptime` before: `{load_before.strip()}`; "
      f"after: `{load_after.strip()}`.")
print()
print("## Corpus (train.tsv files only; no dev, test or textfooler_1000 file is read)")
print()
print("| dataset | file lines | examples | tokens | types | SHA-256 |")
print("|---|---:|---:|---:|---:|---|")
for c in m["corpora"]:
    print(f"| {c['dataset']} | {c['file_lines']:,} | {c['examples']:,} | {c['tokens']:,} | "
          f"{c['types']:,} | `{c['sha256'][:12]}…` |")
print(f"| **all** | | {sum(c['examples'] for c in m['corpora']):,} | {m['tokens']:,} | "
      f"{m['raw_vocabulary_size']:,} | |")
if m["missing_datasets"]:
    print(f"\nMissing (skipped): {', '.join(m['missing_datasets'])}.")
print()
print("Tokens are the word codec's: lowercased, then HuggingFace `Whitespace` "
      "(`\\w+|[^\\w\\s]+`), as documented in tools/train_vectors.py. "
      "sst2's sentences are also among sst2_glue's phrases, so SST wording is counted more than once. "
      f"{m['sentences']:,} sentences (one per example"
      + (f", {m['sentences_split_at_10000_tokens']} split at 10,000 tokens" if m['sentences_split_at_10000_tokens'] else "")
      + "), shuffled once with the seed.")
print()
print("## Parameters")
print()
print(f"{p['algorithm']}; dim {p['dim']}, window {p['window']}, min_count {p['min_count']}, "
      f"epochs {p['epochs']}, negative {p['negative']}, sample {p['sample']}, "
      f"alpha {p['alpha']} → {p['min_alpha']}, ns_exponent {p['ns_exponent']}, seed {p['seed']}, "
      f"workers {p['workers']}"
      + (" (not bit-reproducible with more than one worker; `--workers 1` is)." if p['workers'] > 1 else "."))
print()
s = m["seconds"]
print(f"Wall time: {wall:.0f} s in all (reading and tokenizing {s['read_and_tokenize']:.0f} s, "
      f"training {s['train']:.0f} s, the rest writing the file and the neighbours).")
print()
print("## Vocabulary coverage")
print()
print(f"Vocabulary: {m['vocabulary_size']:,} words (of {m['raw_vocabulary_size']:,} types; "
      f"min_count {p['min_count']} over all corpora). Share of each train set's own types and "
      "tokens that have a vector:")
print()
print("| dataset | types | types with a vector | type coverage | token coverage |")
print("|---|---:|---:|---:|---:|")
for name, c in m["coverage"].items():
    print(f"| {name} | {c['types']:,} | {c['types_with_vector']:,} | {100 * c['type_fraction']:.1f}% | "
          f"{100 * c['token_fraction']:.2f}% |")
print()
print("## Word similarity (gensim's test-data copies of the benchmarks)")
print()
print("| benchmark | Spearman ρ | pairs out of vocabulary |")
print("|---|---:|---:|")
for bench, r in m["word_similarity"].items():
    print(f"| {bench} | {r['spearman']:.3f} | {r['oov_percent']:.1f}% |")
print()
print("## Nearest neighbours (cosine, top 5)")
print()
print("| word | 1 | 2 | 3 | 4 | 5 |")
print("|---|---|---|---|---|---|")
def table(neighbours):
    for word, near in neighbours.items():
        cells = [f"{w} {s:.2f}" for w, s in near] if near else ["(not in vocabulary)"] + [""] * 4
        print(f"| {word} | " + " | ".join(cells) + " |")
table(m["neighbours"])
key = next(k for k in m if k.startswith("neighbours_among_"))
n = key.split("_")[2]
print()
print(f"Among the {int(n):,} most frequent words only (words seen a handful of times have the "
      "noisiest vectors and crowd the lists above):")
print()
print("| word | 1 | 2 | 3 | 4 | 5 |")
print("|---|---|---|---|---|---|")
table(m[key])
print()
print("Related pairs: cosine, and the rank of the second word among the first's neighbours "
      f"(of {m['vocabulary_size'] - 1:,}):")
print()
print("| pair | cosine | rank |")
print("|---|---:|---:|")
for p in m["pairs"]:
    print(f"| {p['pair'][0]} ~ {p['pair'][1]} | {p['cosine']:.3f} | {p['rank']:,} |")
PY
mv "$OUT.md.part" "$RESULTS"
cat "$RESULTS"
