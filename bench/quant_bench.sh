#!/usr/bin/env bash
# quant_bench.sh WORKDIR
#
# gemmac beside llama.cpp on quantized checkpoints: the same GGUF files, the same machine, the
# same run, in turns, so that each figure has the other engine's beside it. bench/README.md
# ("Quantized weights") keeps the results and says how they read.
#
# What it does, everything under WORKDIR (nothing is written to the repository):
#   1. llama.cpp's llama-bench and llama-perplexity, built from PyPI's llama-cpp-python sdist
#      (bench/llamacpp_build.sh);
#   2. the files: the real Gemma 3 270M Q4_K_M (scripts/fetch-model.sh), and a random-weight
#      Gemma 1 2B (build/synth_checkpoint from the published config, BF16, seed 0) written by
#      `gemmac quantize` as BF16, Q8_0, Q4_0 and Q4_K_M GGUF files, which llama.cpp reads as
#      its own;
#   3. speed, ROUNDS times in turn for each file: llama-bench -p 128 -n 64 -r REPS -t THREADS,
#      then gemmac bench --configs=-O2 --prompt-tokens 128 --gen-tokens 64 --reps REPS with
#      f32 activations and with the reduced ones (--activations bf16 for a BF16 file, int8 for
#      the others); gemmac's read bandwidth and share of the bound are gemmac bench's (its
#      probes beside each 8 decode steps), llama.cpp's the mean of a plain read just before and
#      just after llama-bench (build/qdecode's, THREADS threads, 570 MB);
#      then gemmac's peak RSS and start-up (run -n 1, warm: its second run);
#   4. accuracy on bench/text/tico19-en.txt (context 512, CHUNKS chunks): the real 270M decoded
#      to F32 by gemmac quantize, and BF16, Q8_0, Q4_0 and Q4_K_M made from that F32; each
#      scored by llama-perplexity, and by gemmac perplexity --base the F32 file (KL and top-1
#      against it), with f32 activations and with the reduced ones (bf16 or int8, as above).
# Output: markdown tables on stdout; raw JSON and logs under WORKDIR/results.
#
# Environment (defaults): ROUNDS=2 REPS=5 THREADS=2 CHUNKS=8 JOBS=2
#   GEMMAC_BUILD=<repo>/build (gemmac, synth_checkpoint, qdecode)   SKIP_SPEED=  SKIP_ACCURACY=
#   ONLY=  a grep -E pattern: time only the files whose names match (e.g. 'q8_0|q4_k_m')
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 WORKDIR" >&2
    exit 2
fi
mkdir -p "$1"
W=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-2}
REPS=${REPS:-5}
THREADS=${THREADS:-2}
CHUNKS=${CHUNKS:-8}
GEMMAC_BUILD=${GEMMAC_BUILD:-$REPO/build}
GEMMAC=$GEMMAC_BUILD/gemmac
TEXT=$REPO/bench/text/tico19-en.txt
R=$W/results
mkdir -p "$R" "$W/gguf"
say() { echo "== $*" >&2; }
reduced() { case $1 in *bf16*) echo bf16 ;; *) echo int8 ;; esac; } # FILE: its reduced-precision activations

. "$REPO/bench/llamacpp_build.sh"
llamacpp_build "$W" llama-bench llama-perplexity
say "llama.cpp commit $LLAMA_COMMIT"

# 2. the files
REAL=$("$REPO/scripts/fetch-model.sh" gemma-3-270m)
ck=$W/ckpt/gemma-2b-bf16
mkdir -p "$W/ckpt"
if [ ! -f "$ck/model.safetensors" ]; then
    say "writing the random-weight Gemma 1 2B checkpoint (seed 0)"
    "$GEMMAC_BUILD/synth_checkpoint" "$REPO/tests/hf-configs/gemma-2b/config.json" -o "$ck" --dtype bf16
fi
cp -f "$REPO/tests/tokenizers/gemma-tokenizer.model" "$ck/tokenizer.model"
quantize() { # SRC TYPE OUT
    [ -f "$3" ] || "$GEMMAC" quantize "$1" --to "$2" -o "$3" >&2
}
FILES=("$REAL")
for t in bf16 q8_0 q4_0 q4_k_m; do
    quantize "$ck" "$t" "$W/gguf/gemma-2b-$t.gguf"
    FILES+=("$W/gguf/gemma-2b-$t.gguf")
done
if [ -n "${ONLY:-}" ]; then
    mapfile -t FILES < <(printf '%s\n' "${FILES[@]}" | grep -E "$ONLY")
fi

# 3. speed
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; } # FILE EXPR
# The machine's read rate now, GB/s, THREADS threads: build/qdecode's plain read of 570 MB.
read_rate() { "$GEMMAC_BUILD/qdecode" q8_0 2048 262144 "$THREADS" 3 | sed 's/.*read only \([0-9.]*\) GB.*/\1/'; }
speed_row() { # FILE ROUND
    local f=$1 name base
    base=$(basename "$f" .gguf)
    name=$R/$base-r$2
    read_rate > "$name-read-before.txt"
    "$LLAMA_BIN/llama-bench" -m "$f" -t "$THREADS" -p 128 -n 64 -r "$REPS" -o json > "$name-llama.json" 2>/dev/null
    read_rate > "$name-read-after.txt"
    "$GEMMAC" bench "$f" --configs=-O2 --prompt-tokens 128 --gen-tokens 64 --reps "$REPS" --threads "$THREADS" \
        --json > "$name-f32.json" 2>/dev/null
    "$GEMMAC" bench "$f" --configs=-O2 --prompt-tokens 128 --gen-tokens 64 --reps "$REPS" --threads "$THREADS" \
        --activations "$(reduced "$f")" --json > "$name-reduced.json" 2>/dev/null
    python3 - "$name" "$base" <<'EOF'
import json, sys
n, base = sys.argv[1], sys.argv[2]
ll = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in json.load(open(n + "-llama.json"))}
g = {a: json.load(open(f"{n}-{a}.json")) for a in ("f32", "reduced")}
mb = g["f32"]["weight_bytes"] / 1e6
llama_bw = sum(float(open(f"{n}-read-{w}.txt").read()) for w in ("before", "after")) / 2
bws = " / ".join(f"{g[a]['read_bandwidth_gb_s']:.1f}" for a in ("f32", "reduced"))
cells = []
for a in ("f32", "reduced"):
    cells += [f"{g[a]['prefill_tok_s']:.1f} ({g[a]['prefill_tok_s'] / ll['pp']:.2f}x)",
              f"{g[a]['decode_tok_s']:.2f} ({g[a]['decode_tok_s'] / ll['tg']:.2f}x, {g[a]['decode_of_bound']:.2f} of bound)"]
print(f"| {base} | {mb:.0f} | {llama_bw:.1f} / {bws} | {ll['pp']:.1f} | {ll['tg']:.2f} ({ll['tg'] * mb / 1e3 / llama_bw:.2f}) | "
      + " | ".join(cells) + f" | {g['reduced']['activations']} |")
EOF
}
if [ -z "${SKIP_SPEED:-}" ]; then
    say "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(uptime | sed 's/.*average: //')"
    echo
    echo "| file | weights MB | read GB/s: llama.cpp / f32 / reduced runs | llama.cpp pp128 | llama.cpp tg64 (of bound) | gemmac f32 pp128 | gemmac f32 tg64 | gemmac reduced pp128 | gemmac reduced tg64 | reduced |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for round in $(seq "$ROUNDS"); do
        for f in "${FILES[@]}"; do speed_row "$f" "$round"; done
    done
    echo
    echo "| file | file MB | gemmac run -n 1: peak RSS MB | start-up to the first token, s (warm) |"
    echo "|---|---:|---:|---:|"
    for f in "${FILES[@]}"; do
        "$GEMMAC" run "$f" -p hi -n 1 --temp 0 --context 512 > /dev/null 2>&1 # warm: the JIT and page caches
        /usr/bin/time -f "%M %e" -o "$R/time.txt" "$GEMMAC" run "$f" -p hi -n 1 --temp 0 --context 512 > /dev/null 2>&1
        read -r kb secs < "$R/time.txt"
        echo "| $(basename "$f" .gguf) | $(( $(stat -L -c %s "$f") / 1000000 )) | $(( kb / 1000 )) | $secs |"
    done
fi

# 4. accuracy
if [ -z "${SKIP_ACCURACY:-}" ]; then
    base=$W/gguf/270m-f32.gguf
    quantize "$REAL" f32 "$base"
    echo
    echo "Gemma 3 270M (the real Q4_K_M decoded to F32, then requantized by gemmac quantize), $(basename "$TEXT"), context 512, $CHUNKS chunks:"
    echo
    echo "| file | llama.cpp PPL | gemmac f32 PPL | KL vs F32 | top-1 | gemmac reduced PPL | KL vs F32 | top-1 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for t in f32 bf16 q8_0 q4_0 q4_k_m; do
        f=$W/gguf/270m-$t.gguf
        quantize "$base" "$t" "$f"
        "$LLAMA_BIN/llama-perplexity" -m "$f" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t "$THREADS" > "$R/ppl-$t-llama.txt" 2>&1
        lp=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$R/ppl-$t-llama.txt" | head -1)
        cells=""
        for a in f32 "$(reduced "$f")"; do
            "$GEMMAC" perplexity "$f" "$TEXT" --context 512 --chunks "$CHUNKS" --threads "$THREADS" \
                --activations "$a" --base "$base" --json > "$R/ppl-$t-$a.json" 2>/dev/null
            cells+=$(json "$R/ppl-$t-$a.json" "'| %.4f | %.5f | %.1f %%' % (d['ppl'], d['kl_mean'], d['top1_percent'])")" "
        done
        echo "| $t | $lp $cells|"
    done
fi
