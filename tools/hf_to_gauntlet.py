#!/usr/bin/env python3
"""Convert a HuggingFace sequence classifier into a Gauntlet ONNX bundle.

Usage:
    python tools/hf_to_gauntlet.py MODEL_NAME_OR_PATH OUT_DIR [--max-length N] [--opset 17]

The bundle directory gets:
  * model.onnx      - the classifier exported with torch.onnx (TorchScript exporter,
                      dynamo=False): int64 inputs `input_ids` and `attention_mask` (and
                      `token_type_ids` when the tokenizer produces them), float output
                      `logits` [batch, classes], batch and token axes dynamic;
  * tokenizer.json  - the fast (Rust `tokenizers`) tokenizer, special tokens and
                      post-processor included;
  * gauntlet.toml   - the manifest: format_version 1, architecture = the HF model_type,
                      labels from config.id2label, a subword [tokenization] section and an
                      [onnx] section telling Gauntlet how to feed and read the graph.

Requirements: torch and transformers (and onnx/onnxruntime for the optional check). Nothing
is downloaded except what `from_pretrained` fetches for MODEL_NAME_OR_PATH; a local
directory works offline.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "gauntlet.toml"
# Tokenizers report this (or larger) when they have no real length limit.
UNBOUNDED_LENGTH = 1_000_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Export a HuggingFace sequence-classification model (BERT, DistilBERT, "
        "RoBERTa, ...) as a Gauntlet ONNX bundle: model.onnx, tokenizer.json, gauntlet.toml.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL_NAME_OR_PATH",
        help="a hub model id (e.g. distilbert-base-uncased-finetuned-sst-2-english) or a "
        "local directory saved with save_pretrained",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="bundle directory to write")
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="most tokens the model reads, special tokens included (default: the "
        "tokenizer's model_max_length, else the model's max_position_embeddings, else 512)",
    )
    parser.add_argument(
        "--opset", type=int, default=17, help="ONNX opset version to export with (default: 17)"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite files already in OUT_DIR"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip comparing ONNX Runtime's logits with PyTorch's after the export",
    )
    return parser.parse_args(argv)


def fail(message: str) -> None:
    print(f"hf_to_gauntlet: error: {message}", file=sys.stderr)
    sys.exit(1)


def toml_string(value: str) -> str:
    # A JSON string without ASCII escaping is a valid TOML basic string: both escape
    # quotes, backslashes and control characters the same way.
    return json.dumps(value, ensure_ascii=False)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    raise TypeError(f"cannot write {value!r} as a TOML value")


def choose_max_length(requested: int | None, tokenizer, config) -> int:
    if requested is not None:
        if requested < 3:
            fail("--max-length must leave room for the special tokens and some text (>= 3)")
        return requested
    from_tokenizer = getattr(tokenizer, "model_max_length", None)
    if isinstance(from_tokenizer, int) and 0 < from_tokenizer < UNBOUNDED_LENGTH:
        return from_tokenizer
    from_config = getattr(config, "max_position_embeddings", None)
    if isinstance(from_config, int) and from_config > 0:
        # RoBERTa reserves two positions for its padding offset.
        return from_config - 2 if config.model_type in ("roberta", "xlm-roberta") else from_config
    return 512


def labels_of(config) -> list[tuple[int, str, str]]:
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    count = max(len(id2label), int(getattr(config, "num_labels", 0) or 0))
    if count < 2:
        fail("the model has fewer than two labels; Gauntlet attacks classifiers with >= 2")
    if sorted(id2label) != list(range(count)):
        fail(f"config.id2label must number the classes 0..{count - 1}, got {sorted(id2label)}")
    # Keys are how datasets spell the label: the class index, as the HF datasets do.
    return [(i, str(i), id2label.get(i, f"LABEL_{i}")) for i in range(count)]


def lowercases(tokenizer) -> bool:
    if getattr(tokenizer, "do_lower_case", None) is not None:
        return bool(tokenizer.do_lower_case)
    normalizer = json.loads(tokenizer.backend_tokenizer.to_str()).get("normalizer") or {}
    return bool(normalizer.get("lowercase")) or normalizer.get("type") == "Lowercase"


def export_onnx(model, input_names: list[str], sample: dict, path: Path, opset: int) -> None:
    import torch

    class LogitsOnly(torch.nn.Module):
        """Calls the HF model with keyword inputs and returns only the logits."""

        def __init__(self, inner, names):
            super().__init__()
            self.inner = inner
            self.names = names

        def forward(self, *inputs):
            return self.inner(**dict(zip(self.names, inputs)), return_dict=True).logits

    wrapper = LogitsOnly(model, input_names).eval()
    args = tuple(sample[name] for name in input_names)
    dynamic_axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
    dynamic_axes["logits"] = {0: "batch"}
    options = dict(
        input_names=input_names,
        output_names=["logits"],
        dynamic_axes=dynamic_axes,
        opset_version=opset,
        do_constant_folding=True,
    )
    with torch.no_grad():
        try:
            torch.onnx.export(wrapper, args, str(path), dynamo=False, **options)
        except TypeError as error:
            if "dynamo" not in str(error):
                raise
            # torch < 2.5 has only the TorchScript exporter and no `dynamo` argument.
            torch.onnx.export(wrapper, args, str(path), **options)


def check_onnx(path: Path, input_names: list[str], sample: dict, expected) -> None:
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipping the ONNX Runtime check")
        return
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: sample[name].numpy().astype(np.int64) for name in input_names}
    (logits,) = session.run(["logits"], feeds)
    diff = float(np.abs(logits - expected.numpy()).max())
    print(f"ONNX Runtime vs PyTorch logits: max |difference| = {diff:.2e}")
    if diff > 1e-3:
        fail(f"the exported graph disagrees with PyTorch (max difference {diff:.3g})")


def write_manifest(path: Path, *, architecture, hyper_parameters, labels, tokenization, onnx,
                   command, source) -> None:
    lines = [
        "# Written by tools/hf_to_gauntlet.py",
        f"format_version = {FORMAT_VERSION}",
        f"architecture = {toml_string(architecture)}",
        "",
        "[hyper_parameters]",
    ]
    lines += [f"{k} = {toml_value(v)}" for k, v in hyper_parameters.items()]
    for label_id, key, name in labels:
        lines += [
            "",
            "[[labels]]",
            f"id = {label_id}",
            f"key = {toml_string(key)}",
            f"name = {toml_string(name)}",
        ]
    lines += ["", "[tokenization]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in tokenization.items()]
    lines += [
        "",
        # Only what is known: the conversion command. Training provenance of the
        # source model (epochs, data, seed...) is absent, and Gauntlet shows it as unknown.
        "[training]",
        f"command = {toml_string(command)}",
        "",
        "[onnx]",
    ]
    lines += [f"{k} = {toml_value(v)}" for k, v in onnx.items() if v is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as error:
        fail(f"{error}; this tool needs `pip install torch transformers`")

    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [out_dir / name for name in (ONNX_FILE, TOKENIZER_FILE, MANIFEST_FILE)]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        fail(f"{', '.join(existing)} already exist; pass --force to overwrite")

    tokenizer = AutoTokenizer.from_pretrained(args.model, use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        fail("the model has no fast tokenizer (tokenizer.json); Gauntlet reads only those")
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    config = model.config

    for role in ("pad", "unk"):
        if getattr(tokenizer, f"{role}_token", None) is None:
            fail(f"the tokenizer has no {role} token; Gauntlet needs both a pad and an unk token")
    max_length = choose_max_length(args.max_length, tokenizer, config)
    labels = labels_of(config)
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        input_names.append("token_type_ids")

    # Two texts of different lengths, padded: the traced graph sees a real mask.
    sample = tokenizer(
        ["a short text", "a somewhat longer text to trace the exporter with padding"],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    sample = {name: sample[name].to(torch.int64) for name in input_names}
    with torch.no_grad():
        expected = model(**sample, return_dict=True).logits

    onnx_path = out_dir / ONNX_FILE
    print(f"exporting {args.model} ({config.model_type}) to {onnx_path} (opset {args.opset})")
    export_onnx(model, input_names, sample, onnx_path, args.opset)
    if not args.no_check:
        check_onnx(onnx_path, input_names, sample, expected)

    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))

    hyper_parameters = {"source": args.model, "opset": args.opset}
    for field in ("vocab_size", "hidden_size", "dim", "num_hidden_layers", "n_layers"):
        value = getattr(config, field, None)
        if isinstance(value, int):
            hyper_parameters[field] = value
    write_manifest(
        out_dir / MANIFEST_FILE,
        architecture=config.model_type,
        hyper_parameters=hyper_parameters,
        labels=labels,
        tokenization={
            "kind": "word",
            "scheme": "subword",
            "lowercase": lowercases(tokenizer),
            "max_length": max_length,
            "max_word_length": 0,
            "pad_token": tokenizer.pad_token,
            "unk_token": tokenizer.unk_token,
        },
        onnx={
            "file": ONNX_FILE,
            "input_ids": "input_ids",
            "attention_mask": "attention_mask",
            "token_type_ids": "token_type_ids" if "token_type_ids" in input_names else None,
            "output": "logits",
            "output_kind": "logits",
            "pad_id": int(tokenizer.pad_token_id),
            "min_length": 1,
        },
        command=shlex.join([sys.executable, *sys.argv]),
        source=f"huggingface:{args.model}",
    )
    names = ", ".join(f"{i}={name}" for i, _, name in labels)
    print(f"wrote {out_dir}: {ONNX_FILE}, {TOKENIZER_FILE}, {MANIFEST_FILE} (labels {names})")


if __name__ == "__main__":
    main(sys.argv[1:])
