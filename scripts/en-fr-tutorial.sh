#!/usr/bin/env bash
# en-fr-tutorial.sh — the Gemma release's fine-tuning tutorial, done by gemmac
# end to end on the real Gemma 3 270M: LoRA on English→French pairs, chrF
# before and after on held-out pairs and on TICO-19.
#
#   scripts/en-fr-tutorial.sh [OUT_DIR] [--steps N] [--batch B] [--lr X] [--limit N]
#
# The 10000 Tatoeba pairs of data/en-fr/pairs.tsv are split once and for all:
# every tenth line (1000 pairs) is held out, the other 9000 are the training
# set. The base model and the fine-tuned one are scored with `gemmac eval
# en-fr` (greedy, 'English: ...\nFrench:', the reply's first line, chrF as
# sacreBLEU computes it) on the held-out pairs and on TICO-19's 2100 test
# pairs (--limit N: the first N of each). Training: `gemmac finetune` with
# LoRA rank 8 on every layer matrix, the template 'English: {in}\nFrench:
# {out}', batches of 8 pairs (defaults: 300 steps, lr 5e-4). OUT_DIR
# (default build/en-fr-tutorial) gets the splits, the fine-tuned checkpoint
# (ft.gguf) and its training state, every answer (*.jsonl), the loss curve
# (loss.svg), the logs and results.md: the figures, the time each part took
# and the peak memory of training. Rerunning resumes: finished evaluations
# and training steps are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/en-fr-tutorial steps=300 batch=8 lr=5e-4 limit=""
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps=$2; shift ;;
        --batch) batch=$2; shift ;;
        --lr) lr=$2; shift ;;
        --limit) limit="--limit $2"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        -*) echo "en-fr-tutorial.sh: unknown flag $1" >&2; exit 2 ;;
        *) out=$1 ;;
    esac
    shift
done

[ -x build/gemmac ] || scripts/build.sh
model=$(scripts/fetch-model.sh gemma-3-270m --quick)
mkdir -p "$out"
awk 'NR % 10 != 0' data/en-fr/pairs.tsv > "$out/train.tsv"
awk 'NR % 10 == 0' data/en-fr/pairs.tsv > "$out/heldout.tsv"

# timed NAME CMD...: runs CMD, its stderr to OUT/NAME.log; the wall time and peak RSS to OUT/NAME.time
timed() {
    local name=$1; shift
    /usr/bin/time -f "%e s, peak RSS %M KB" -o "$out/$name.time" "$@" 2> "$out/$name.log"
}

evaluate() { # evaluate NAME MODEL: chrF on the held-out pairs and on TICO-19
    timed "$1-heldout" build/gemmac eval en-fr "$2" --data "$out/heldout.tsv" $limit --out "$out/$1-heldout.jsonl"
    timed "$1-tico19" build/gemmac eval en-fr "$2" $limit --out "$out/$1-tico19.jsonl"
}

evaluate before "$model"
resume=""; [ -f "$out/ft.gguf.state" ] && resume=--resume
timed finetune build/gemmac finetune "$model" --data "$out/train.tsv" -o "$out/ft.gguf" --lora-rank 8 \
    --steps "$steps" --batch "$batch" --lr "$lr" --template 'English: {in}\nFrench: {out}' --loss-svg "$out/loss.svg" $resume
evaluate after "$out/ft.gguf"

chrf() { grep -o 'chrF [0-9.]* over [0-9]* answers' "$out/$1.log" | tail -1; }
{
    echo "# en→fr tutorial: Gemma 3 270M Q4_K_M, LoRA rank 8, $steps steps of $batch pairs, lr $lr"
    echo
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
    echo
    echo "| | held-out Tatoeba (1000) | TICO-19 test (2100) |"
    echo "|---|---|---|"
    echo "| base | $(chrf before-heldout) | $(chrf before-tico19) |"
    echo "| fine-tuned | $(chrf after-heldout) | $(chrf after-tico19) |"
    echo
    echo "Training: $(cat "$out/finetune.time"); $(tail -1 "$out/finetune.log")"
    for part in before-heldout before-tico19 after-heldout after-tico19; do echo "- $part: $(cat "$out/$part.time")"; done
} > "$out/results.md"
cat "$out/results.md"
