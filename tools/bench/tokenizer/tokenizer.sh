#!/usr/bin/env bash
# Encoding throughput, llmlab vs js-tiktoken, GPT-2 vocabulary, one core,
# alternating runs on the same text. Needs node and
# `npm install` in tools/golden/tokenizer.
#   tools/bench/tokenizer/tokenizer.sh [FILE] [ROUNDS]
# Without FILE it generates 5 MB of text with tools/golden/tokenizer/corpus.py.
set -euo pipefail
cd "$(dirname "$0")/../../.."
file=${1:-}
rounds=${2:-3}
if [ -z "$file" ]; then
  file=$(mktemp)
  trap 'rm -f "$file"' EXIT
  ${PYTHON:-python3} tools/golden/tokenizer/corpus.py 5000000 > "$file"
fi
go build -o /tmp/llmlab-tokbench ./tools/bench/tokenizer
for i in $(seq "$rounds"); do
  taskset -c 0 /tmp/llmlab-tokbench -file "$file" -reps 3
  taskset -c 0 node tools/bench/tokenizer/bench.mjs "$file" 3
done
