#!/usr/bin/env bash
# run.sh — the main job: set up, build, and run the embedded demo model
# (models/demo, a tiny untrained Gemma 3-architecture checkpoint with its
# own SentencePiece tokenizer): a prompt, then a two-turn chat.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/build.sh
echo "== gemmac info models/demo"
./build/gemmac info models/demo | sed -n '1,3p;/^layers/,$p'
echo "== gemmac run -p 'The weather today' -n 32 --seed 1 --verbose"
./build/gemmac run -p "The weather today" -n 32 --seed 1 --verbose
echo "== gemmac run --chat (two turns on stdin, greedy)"
printf 'What is the capital of France?\nAnd of Italy?\n' | ./build/gemmac run --chat --temp 0 -n 24
