#!/usr/bin/env python3
"""Train word2vec vectors on the shared corpora, to initialise word models (Kim CNN non-static).

Usage:
    python tools/train_vectors.py DATA_DIR OUT_FILE [--dim 300] [--window 5] [--min-count 2]
        [--epochs 5] [--seed 1] [--workers 2] [--negative 5] [--sample 1e-3]
        [--datasets sst2,sst2_glue,mr,subj,ag_news,imdb]

Corpus: the `train.tsv` of each of sst2, sst2_glue, mr, subj, ag_news and imdb under DATA_DIR
(a missing folder is skipped and recorded; `--datasets` takes a subset of these names). No other file is ever opened: never a dev.tsv or
test.tsv, never textfooler_1000/ (its examples overlap test sets). Each file is read as the
shared layout says: header line `label<TAB>text`, then one example a line split at its single
tab, no quoting (a `"` is text). Every example is one word2vec sentence; labels are ignored.
Texts appear as often as the files hold them (sst2/train.tsv's sentences are also among
sst2_glue's phrases, so SST wording counts more than once). The sentences are shuffled once
with a `random.Random(seed)` (MR, SUBJ and IMDB files are grouped by label, and the files
would otherwise follow one another), so a run depends only on the files and the arguments.

Overlap between the corpora (measured with this tokenizer, on letters and digits only): SST
was built from the same Rotten Tomatoes sentences as MR, so about 73% of sst2/test.tsv's
sentences occur verbatim in mr/train.tsv (22% in subj/train.tsv), 66% of mr/test.tsv's in the
SST train files, and 38% of subj/test.tsv's in the SST or MR train files. Vectors trained on
all six have therefore seen, without labels, most test sentences of SST-2, MR and SUBJ. For a
strict evaluation on one of them leave the others out, e.g. `--datasets
sst2,sst2_glue,ag_news,imdb` for SST-2, `mr,ag_news,imdb` for MR, `subj,ag_news,imdb` for SUBJ.

Tokenization mirrors the project's word models (crates/gauntlet-core/src/codec/mod.rs: a
HuggingFace `tokenizers` pipeline with the `Lowercase` normalizer, which lowercasing models
use and `gauntlet-train` does by default, and the `Whitespace` pre-tokenizer). `Whitespace`
keeps the matches of the Rust `regex` pattern `\\w+|[^\\w\\s]+`: runs of word characters and
runs of other non-space characters, so punctuation is split from words but a run of it stays
one token ("don't" -> "don", "'", "t"; "...!" -> "...!"; "<br />" -> "<", "br", "/>").
Python's `re` does not give `\\w` and `\\s` the Rust meanings, so both classes are built here
from `unicodedata` as the Rust `regex` crate defines them: `\\w` = Alphabetic (letters, letter
numbers and the circled/squared Latin letters of Other_Alphabetic) + marks + decimal digits +
connector punctuation + ZWNJ/ZWJ; `\\s` = the White_Space property. Lowercasing is per
character (`NormalizedString::lowercase` calls `char::to_lowercase`), so a final capital sigma
becomes "σ", not the "ς" of Python's `str.lower`. Remaining differences can only come from the
Unicode versions of Python's `unicodedata` and of the Rust crates. Checked against the PyPI
`tokenizers` 0.23.3 pipeline (`Lowercase` + `Whitespace`): identical tokens on all 105,801
training texts of the six corpora and on every code point assigned in Unicode 14 (Python
3.11's `unicodedata`); only characters assigned later can differ.

Model: gensim `Word2Vec`, skip-gram with negative sampling (sg=1, hs=0) as in Mikolov et
al.'s word2vec, whose Google News vectors Kim (2014) used. Vectors start from `--seed`, and a
stable hash stands in for Python's `hash` (so PYTHONHASHSEED does not matter). With
`--workers 1` a run is bit-for-bit reproducible for one gensim/numpy build; with more workers
gensim's threads take batches in scheduling order, so repeated runs differ slightly (the
neighbour lists stay close, not identical). Sentences longer than gensim's 10,000-token limit
(which would silently cut them) are split into 10,000-token pieces.

Output: OUT_FILE in word2vec text format (first line `COUNT DIM`, then `word v1 ... vDIM`,
six decimals, most frequent word first), which `gauntlet-train train --embeddings` reads, and
OUT_FILE.json: the corpus files (path, SHA-256, file lines, examples, tokens), the token count,
vocabulary size, per-corpus vocabulary coverage, the Spearman correlations on WordSim-353 and
SimLex-999 (the copies in gensim's test data), versions, parameters, timings, the SHA-256 of
OUT_FILE, the nearest neighbours (cosine, top 5) of the probe words among all words and among
the 10,000 most frequent, and the cosine and neighbour rank of a few related pairs; the
neighbours, pairs and correlations are also printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

DATASETS = ("sst2", "sst2_glue", "mr", "subj", "ag_news", "imdb")
TRAIN_FILE = "train.tsv"
HEADER = "label\ttext"
PROBES = ("good", "bad", "movie", "film", "great", "awful", "funny", "boring", "war", "market")
TOPN = 5
# Neighbours are also listed among this many most frequent words only, where words seen a
# handful of times (whose vectors are the noisiest) cannot appear.
FREQUENT = 10_000
# Pairs whose cosine and rank (of the second among the first's neighbours) are reported.
PAIRS = (("good", "great"), ("good", "decent"), ("good", "bad"), ("movie", "film"),
         ("awful", "terrible"), ("boring", "dull"), ("funny", "hilarious"), ("market", "stocks"))
# gensim's Cython routines stop reading a sentence at this many tokens.
MAX_SENTENCE_TOKENS = 10_000

# White_Space (PropList.txt), the Rust regex crate's `\s`.
WHITE_SPACE = (
    [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
     (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
)
# Alphabetic characters outside the L*, Nl and M* categories (Other_Alphabetic, category So):
# circled and squared Latin letters.
OTHER_ALPHABETIC_SO = [(0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189)]
JOIN_CONTROL = [(0x200C, 0x200D)]


def _ranges(codepoints: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in codepoints:
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def _class(ranges: list[tuple[int, int]]) -> str:
    def esc(c: int) -> str:
        return f"\\U{c:08x}"

    return "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)


def word_pattern() -> re.Pattern[str]:
    """`\\w+|[^\\w\\s]+` with the Rust regex crate's Unicode `\\w` and `\\s`."""
    word = [
        c
        for c in range(0x110000)
        if unicodedata.category(chr(c))[0] in "LM"
        or unicodedata.category(chr(c)) in ("Nl", "Nd", "Pc")
    ]
    extra = {c for a, b in OTHER_ALPHABETIC_SO + JOIN_CONTROL for c in range(a, b + 1)}
    w = _class(_ranges(sorted(set(word) | extra)))
    s = _class(WHITE_SPACE)
    return re.compile(f"[{w}]+|[^{w}{s}]+")


PATTERN = word_pattern()


def lowercase(text: str) -> str:
    """`char::to_lowercase` per character (Python's `str.lower` only differs on sigma)."""
    if "\u03a3" in text:
        return "".join(c.lower() for c in text)
    return text.lower()


def tokenize(text: str) -> list[str]:
    return PATTERN.findall(lowercase(text))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def read_train(path: Path) -> tuple[list[str], int]:
    """The texts of one TSV (labels checked, then dropped) and its number of lines."""
    texts = []
    with open(path, encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != HEADER:
        sys.exit(f"{path}:1: expected the header {HEADER!r}")
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].isdigit():
            sys.exit(f"{path}:{n}: expected `label<TAB>text` with one tab and an integer label")
        texts.append(parts[1])
    return texts, len(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    p.add_argument("out_file", type=Path, metavar="OUT_FILE")
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--negative", type=int, default=5, help="negative samples per word (default 5)")
    p.add_argument("--sample", type=float, default=1e-3,
                   help="down-sampling threshold for frequent words (default 1e-3)")
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help="comma-separated subset of the default %(default)s, e.g. to leave out the "
                        "corpora whose train sets hold an evaluation set's sentences")
    a = p.parse_args(argv)
    a.datasets = [d for d in a.datasets.split(",") if d]
    unknown = [d for d in a.datasets if d not in DATASETS]
    if unknown or not a.datasets:
        p.error(f"--datasets takes names among {', '.join(DATASETS)}, not {unknown or 'nothing'}")
    for name in ("dim", "window", "min_count", "epochs", "workers", "negative"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import gensim
    import numpy as np
    import scipy
    from gensim.models import Word2Vec

    t0 = time.monotonic()
    corpora, missing, sentences = [], [], []
    per_corpus_tokens: dict[str, Counter] = {}
    split_long = 0
    for name in args.datasets:
        path = args.data_dir / name / TRAIN_FILE
        if not path.is_file():
            missing.append(name)
            continue
        texts, file_lines = read_train(path)
        counts: Counter = Counter()
        n_tokens = 0
        for text in texts:
            tokens = tokenize(text)
            counts.update(tokens)
            n_tokens += len(tokens)
            for i in range(0, len(tokens), MAX_SENTENCE_TOKENS):
                sentences.append(tokens[i : i + MAX_SENTENCE_TOKENS])
            split_long += max(0, (len(tokens) - 1) // MAX_SENTENCE_TOKENS)
        per_corpus_tokens[name] = counts
        corpora.append({
            "dataset": name,
            "file": str(path),
            "sha256": sha256(path),
            "file_lines": file_lines,
            "examples": len(texts),
            "tokens": n_tokens,
            "types": len(counts),
        })
        print(f"{path}: {len(texts)} examples, {n_tokens} tokens", file=sys.stderr)
    if not corpora:
        sys.exit(f"no {TRAIN_FILE} of {', '.join(args.datasets)} under {args.data_dir}")
    sentences = [s for s in sentences if s]
    random.Random(args.seed).shuffle(sentences)
    total_tokens = sum(c["tokens"] for c in corpora)
    t_read = time.monotonic() - t0

    model = Word2Vec(
        vector_size=args.dim, window=args.window, min_count=args.min_count, sg=1, hs=0,
        negative=args.negative, sample=args.sample, seed=args.seed, workers=args.workers,
        epochs=args.epochs, hashfxn=stable_hash,
    )
    model.build_vocab(sentences)
    t1 = time.monotonic()
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    t_train = time.monotonic() - t1
    wv = model.wv

    args.out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out_file.with_name(args.out_file.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{len(wv.index_to_key)} {wv.vector_size}\n")
        for word, row in zip(wv.index_to_key, wv.vectors):
            f.write(word + " " + " ".join(f"{x:.6f}" for x in row.tolist()) + "\n")
    os.replace(tmp, args.out_file)

    vocab = set(wv.key_to_index)
    coverage = {}
    for name, counts in per_corpus_tokens.items():
        found = [w for w in counts if w in vocab]
        coverage[name] = {
            "types": len(counts),
            "types_with_vector": len(found),
            "type_fraction": round(len(found) / len(counts), 4),
            "token_fraction": round(sum(counts[w] for w in found) / sum(counts.values()), 4),
        }
    neighbours, frequent = {}, {}
    for word in PROBES:
        if word in vocab:
            neighbours[word] = [[w, round(float(s), 3)] for w, s in wv.most_similar(word, topn=TOPN)]
            frequent[word] = [[w, round(float(s), 3)]
                              for w, s in wv.most_similar(word, topn=TOPN, restrict_vocab=FREQUENT)]
        else:
            neighbours[word] = frequent[word] = None
    pairs = []
    for a, b in PAIRS:
        if a in vocab and b in vocab:
            order = np.argsort(-wv.cosine_similarities(wv[a], wv.vectors), kind="stable")
            rank = [wv.index_to_key[i] for i in order if i != wv.key_to_index[a]].index(b) + 1
            pairs.append({"pair": [a, b], "cosine": round(float(wv.similarity(a, b)), 3), "rank": rank})

    # Word-similarity benchmarks shipped inside gensim (its test data): Spearman correlation of
    # cosine with human ratings over the pairs both of whose words have a vector.
    from gensim.test.utils import datapath

    similarity = {}
    for bench in ("wordsim353.tsv", "simlex999.txt"):
        (_, _), (rho, _), oov = wv.evaluate_word_pairs(datapath(bench), case_insensitive=True)
        similarity[bench] = {"spearman": round(float(rho), 3), "oov_percent": round(float(oov), 1)}

    meta = {
        "tool": "tools/train_vectors.py",
        "command": " ".join(["tools/train_vectors.py", *argv]),
        "vectors_file": str(args.out_file),
        "vectors_sha256": sha256(args.out_file),
        "format": "word2vec text, 6 decimals, most frequent first",
        "corpora": corpora,
        "missing_datasets": missing,
        "sentences": len(sentences),
        "sentences_split_at_10000_tokens": split_long,
        "tokens": total_tokens,
        "vocabulary_size": len(wv.index_to_key),
        "raw_vocabulary_size": len(set().union(*per_corpus_tokens.values())),
        "coverage": coverage,
        "tokenizer": "lowercase per char, then Rust regex \\w+|[^\\w\\s]+ (HF Whitespace)",
        "parameters": {
            "algorithm": "skip-gram, negative sampling (sg=1, hs=0)",
            "datasets": args.datasets,
            "dim": args.dim, "window": args.window, "min_count": args.min_count,
            "epochs": args.epochs, "seed": args.seed, "workers": args.workers,
            "negative": args.negative, "sample": args.sample, "alpha": model.alpha,
            "min_alpha": model.min_alpha, "ns_exponent": model.ns_exponent,
            "shuffle": f"random.Random({args.seed}).shuffle over all sentences, once",
        },
        "versions": {
            "gensim": gensim.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version(),
            "gensim_fast_version": __import__("gensim.models.word2vec_inner",
                                              fromlist=["FAST_VERSION"]).FAST_VERSION,
        },
        "seconds": {"read_and_tokenize": round(t_read, 1), "train": round(t_train, 1),
                    "total": round(time.monotonic() - t0, 1)},
        "bit_reproducible": args.workers == 1,
        "word_similarity": similarity,
        "neighbours": neighbours,
        f"neighbours_among_{FREQUENT}_most_frequent": frequent,
        "pairs": pairs,
    }
    with open(str(args.out_file) + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")

    print(f"{len(wv.index_to_key)} words x {wv.vector_size} -> {args.out_file} "
          f"({total_tokens} tokens, {meta['seconds']['total']} s)")
    for word in PROBES:
        near = neighbours[word]
        shown = ", ".join(f"{w} {s:.3f}" for w, s in near) if near else "(not in vocabulary)"
        print(f"{word}: {shown}")
    for p in pairs:
        print(f"cos({p['pair'][0]}, {p['pair'][1]}) = {p['cosine']:.3f}, rank {p['rank']}")
    for bench, r in similarity.items():
        print(f"{bench}: Spearman {r['spearman']:.3f} ({r['oov_percent']:.1f}% of pairs out of vocabulary)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
