#!/usr/bin/env bash
# make-demo.sh — rebuild the shipped demo model (models/demo) from its sources:
# tokenizer.model is trained by spm_train on corpus.txt; model.safetensors is
# trained by gemmac itself from scratch on corpus.txt: synth_checkpoint draws
# the start from config.json (--init train, seed 2), then `gemmac finetune
# --full --text` takes 600 AdamW steps of 8 pieces of 128 tokens (lr 3e-3,
# 30 steps of warmup, cosine decay). Every part is deterministic, so a rebuild
# gives the same bytes as the committed files: training runs the reference
# backend (--backend reference: the jit's kernels are built for the CPU at
# hand, so their sums differ between CPUs), whose matmuls are OpenBLAS's, pinned here to one kernel family and
# two threads (OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS) so that any x86-64
# machine with Debian 12's OpenBLAS sums in the same order.
#
#   scripts/make-demo.sh [--check] [path/to/build]
#
# Without --check the files in models/demo are replaced. With --check they are
# rebuilt in a temporary directory and compared with the committed ones; the
# exit status is 1 if any differs. The build directory (synth_checkpoint and
# gemmac) defaults to build/.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
if [[ "${1:-}" == "--check" ]]; then check=1; shift; fi
build="${1:-build}"
synth="$build/synth_checkpoint" gemmac="$build/gemmac"
demo=models/demo
for tool in "$synth" "$gemmac"; do
    [[ -x "$tool" ]] || { echo "make-demo: $tool: not an executable (build it first: cmake --build build)" >&2; exit 2; }
done
command -v spm_train >/dev/null || { echo "make-demo: spm_train not found (install sentencepiece)" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# spm_train records its input path and model prefix in the model file, so it
# always runs in a scratch directory on the same names.
cp "$demo/corpus.txt" "$work/corpus.txt"
(cd "$work" && spm_train --input=corpus.txt --model_prefix=tokenizer \
    --model_type=bpe --vocab_size=2048 --character_coverage=1.0 --byte_fallback=true \
    --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 \
    --user_defined_symbols='<start_of_turn>,<end_of_turn>' \
    --add_dummy_prefix=false --split_digits=true --normalization_rule_name=identity \
    --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true \
    --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false --random_seed=1 \
    --minloglevel=1 >spm_train.log 2>&1) || { cat "$work/spm_train.log" >&2; exit 1; }

vocab=$(wc -l <"$work/tokenizer.vocab")
grep -Eq "\"vocab_size\": *$vocab([^0-9]|\$)" "$demo/config.json" ||
    { echo "make-demo: $demo/config.json: vocab_size must be the tokenizer's $vocab pieces" >&2; exit 1; }

"$synth" "$demo/config.json" -o "$work/init" --seed 2 --dtype f32 --init train >/dev/null
cp "$work/tokenizer.model" "$work/init/tokenizer.model"
OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=2 "$gemmac" finetune "$work/init" --text --data "$demo/corpus.txt" \
    --full -o "$work/out" --steps 600 --batch 8 --seq 128 --lr 3e-3 --warmup 30 --cosine --seed 0 --save-every 600 \
    --backend reference \
    --loss-svg "$work/out/loss.svg" \
    2> "$work/train.log" || { cat "$work/train.log" >&2; exit 1; }
tail -1 "$work/train.log" >&2

if ((check)); then
    status=0
    for f in tokenizer.model model.safetensors; do
        if cmp -s "$work/out/$f" "$demo/$f"; then echo "same     $demo/$f"
        else echo "DIFFERS  $demo/$f"; status=1; fi
    done
    exit $status
fi
for f in tokenizer.model model.safetensors loss.svg; do mv "$work/out/$f" "$demo/$f"; done
(cd "$demo" && sha256sum tokenizer.model model.safetensors config.json corpus.txt)
