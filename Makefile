# Gauntlet developer entry points. Every target provisions the native runtimes first
# (scripts/bootstrap.sh: torch + onnxruntime from PyPI into ~/.cache/gauntlet, reused).
SHELL := /bin/bash
BOOT := set -euo pipefail; eval "$$(scripts/bootstrap.sh)"
DEMO_MODEL ?= models/sst2-word-cnn

.PHONY: run test build bootstrap lint demo-model

## Main job: provision, build, and run the bundled demo model on a few sentences.
run: build
	@$(BOOT); target/debug/gauntlet-train predict --model $(DEMO_MODEL) \
	  "a gripping , beautifully acted film" \
	  "the plot is dull and the jokes fall flat" \
	  "it is neither good nor bad , just long"

## Tests: formatting, lints, then every test of the workspace.
test:
	@$(BOOT); cargo fmt --all --check; \
	  cargo clippy --workspace --all-targets -- -D warnings; \
	  cargo test --workspace

build:
	@$(BOOT); cargo build --workspace --bins

bootstrap:
	@scripts/bootstrap.sh >/dev/null

lint:
	@$(BOOT); cargo fmt --all --check; cargo clippy --workspace --all-targets -- -D warnings

## Rebuilds the demo bundle from ../shared/data (the command is recorded in its manifest).
demo-model: build
	@$(BOOT); target/debug/gauntlet-train train --arch word-cnn \
	  --train $(DATA)/sst2/train.tsv --dev $(DATA)/sst2/dev.tsv --out $(DEMO_MODEL) \
	  --label-names negative,positive $(DEMO_FLAGS)
