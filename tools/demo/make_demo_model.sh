#!/usr/bin/env bash
# Builds the embedded demo model from the project's own data: a BPE
# tokenizer trained on the demo stories and instructions, then a small
# Llama-family model pretrained on the stories, stored as f16 in
# assets/model. Deterministic for a given seed on a given machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-1100}
BIN=${BIN:-bin/llmlab}
WORK=build/demo-model
rm -rf "$WORK"
mkdir -p "$WORK"
zcat assets/data/stories.txt.gz > "$WORK/stories.txt"
"$BIN" tokenizer train --data "$WORK/stories.txt" --data assets/data/instruct_train.jsonl \
	--vocab 2048 --special '<|endoftext|>,<|im_start|>,<|im_end|>' --chat-template chatml --out "$WORK/tok"
"$BIN" init --config tools/demo/config.json --tokenizer "$WORK/tok" --seed 1 --out "$WORK/init"
"$BIN" pretrain --model "$WORK/init" --data "$WORK/stories.txt" --out "$WORK/run" \
	--steps "$STEPS" --batch 16 --ctx 128 --lr 3e-3 --warmup 100 --eval-every 500 --save-every 500 \
	--save-dtype f16 --seed 1
rm -rf assets/model
mkdir -p assets/model
cp "$WORK"/run/final/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json} assets/model/
cp "$WORK"/init/generation_config.json assets/model/
grep -h '"event":"eval"' "$WORK/run/metrics.jsonl" | tail -1 > assets/model/eval.json || true
ls -l assets/model
