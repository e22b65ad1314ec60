#!/usr/bin/env bash
# llamacpp_reference.sh WORKDIR
#
# Measures llama.cpp on the same random-weight Gemma 1 2B checkpoints that gemmac benchmarks,
# so that gemmac's figures can be compared with llama.cpp's on the same machine, in the same run.
# See bench/llamacpp-reference.md for the figures and how they were made.
#
# What it does, everything under WORKDIR (nothing is written to the repository):
#   1. pip-downloads the llama-cpp-python source distribution from PyPI, pinned to
#      $LLAMACPP_PY_VERSION; its vendor/llama.cpp is llama.cpp's source (no llama.cpp code
#      lives in this repository);
#   2. builds llama.cpp's llama-bench with cmake: Release, -DGGML_NATIVE=ON (-march=native),
#      CPU only, $JOBS parallel jobs;
#   3. makes a Python venv with the converter's requirements (torch from PyPI; PyPI's Linux
#      torch wheel pulls the CUDA libraries, ~4 GB, as nothing else is reachable) and
#      llama.cpp's own gguf-py;
#   4. writes the random-weight checkpoints with gemmac's synth_checkpoint (seed 0) from the
#      published Gemma 2B config, unless $CKPT_ROOT/gemma-2b-<dtype>/model.safetensors exists;
#   5. converts them with llama.cpp's convert_hf_to_gguf.py (--outtype f32 / bf16), with the
#      repository's Gemma tokenizer.model copied next to symlinks of the checkpoint;
#   6. runs  llama-bench -m FILE -t $THREADS -p 128,512 -n 64 -r $REPS  for each dtype and
#      prints the tables (markdown, plus JSON files under WORKDIR/results).
# Every step is skipped when its output exists, so the script can be rerun after a failure.
#
# Environment (defaults):
#   LLAMACPP_PY_VERSION=0.3.36   llama-cpp-python sdist; 0.3.36 vendors llama.cpp 0c1e570
#   LLAMACPP_SDIST_SHA256=832db069...  checked when the version is 0.3.36 (empty: no check)
#   DTYPES="bf16 f32"            which checkpoints to convert and measure
#   JOBS=2 THREADS=2 REPS=3
#   CKPT_ROOT=WORKDIR/ckpt       where gemma-2b-<dtype>/ checkpoints are found or written
#   GEMMAC_BUILD=<repo>/build    directory holding synth_checkpoint
#   MIN_AVAIL_GB_F32=14 MIN_AVAIL_GB_BF16=8
#                                llama-bench runs only with that much memory available
#                                (free's "available"); otherwise the dtype is skipped
#   PYTHON=python3
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 WORKDIR" >&2
    exit 2
fi
mkdir -p "$1"
W=$(cd "$1" && pwd)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DTYPES=${DTYPES-"bf16 f32"}
JOBS=${JOBS:-2}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
CKPT_ROOT=${CKPT_ROOT:-$W/ckpt}
GEMMAC_BUILD=${GEMMAC_BUILD:-$REPO/build}
MIN_AVAIL_GB_F32=${MIN_AVAIL_GB_F32:-14}
MIN_AVAIL_GB_BF16=${MIN_AVAIL_GB_BF16:-8}
PYTHON=${PYTHON:-python3}
HF_CONFIG=$REPO/tests/hf-configs/gemma-2b/config.json
TOKENIZER=$REPO/tests/tokenizers/gemma-tokenizer.model

say() { echo "== $*" >&2; }

# 1. + 2. llama.cpp from PyPI's sdist, and llama-bench
. "$REPO/bench/llamacpp_build.sh"
llamacpp_build "$W" llama-bench
BENCH=$LLAMA_BIN/llama-bench
say "llama.cpp commit $LLAMA_COMMIT"

# 3. converter venv
VENV=$W/venv
if [ ! -f "$VENV/.ready" ]; then
    say "making the converter venv (torch 2.11.0 and the CUDA wheels it depends on: several GB)"
    "$PYTHON" -m venv "$VENV"
    # the pins of $LLAMA/requirements/requirements-convert_hf_to_gguf.txt, without its
    # download.pytorch.org index (not reachable here), and llama.cpp's own gguf-py
    "$VENV/bin/pip" install torch==2.11.0 "numpy~=2.2.6" "sentencepiece>=0.1.98,<0.3.0" \
        transformers==4.57.6 "protobuf>=4.21.0,<5.0.0" safetensors "$LLAMA/gguf-py"
    touch "$VENV/.ready"
fi

# 4. + 5. checkpoints and GGUF files
mkdir -p "$W/gguf" "$W/results" "$CKPT_ROOT"
for dt in $DTYPES; do
    ck=$CKPT_ROOT/gemma-2b-$dt
    if [ ! -f "$ck/model.safetensors" ]; then
        say "writing random-weight checkpoint $ck (seed 0)"
        "$GEMMAC_BUILD/synth_checkpoint" "$HF_CONFIG" -o "$ck" --dtype "$dt"
    fi
    out=$W/gguf/gemma-2b-$dt.gguf
    if [ ! -f "$out" ]; then
        hf=$W/hf-$dt
        mkdir -p "$hf"
        ln -sf "$ck/config.json" "$ck/model.safetensors" "$hf/"
        cp -f "$TOKENIZER" "$hf/tokenizer.model"
        say "converting $ck -> $out"
        (cd "$LLAMA" && "$VENV/bin/python" convert_hf_to_gguf.py "$hf" --outtype "$dt" \
            --outfile "$out.tmp")
        mv "$out.tmp" "$out"
    fi
done

# 6. measure
avail_gb() { free -g | awk '/^Mem:/ {print $7}'; }
for dt in $DTYPES; do
    case $dt in f32) need=$MIN_AVAIL_GB_F32 ;; *) need=$MIN_AVAIL_GB_BF16 ;; esac
    have=$(avail_gb)
    if [ "$have" -lt "$need" ]; then
        say "skipping $dt: $have GB available, $need GB wanted"
        continue
    fi
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    res=$W/results/$dt-$stamp
    cmd=("$BENCH" -m "$W/gguf/gemma-2b-$dt.gguf" -t "$THREADS" -p 128,512 -n 64 -r "$REPS")
    say "load before: $(uptime)"
    say "running: ${cmd[*]}"
    "${cmd[@]}" -o json > "$res.json"
    say "load after:  $(uptime)"
    "$PYTHON" - "$res.json" "$dt" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"\n{sys.argv[2]}  (llama.cpp {rows[0]['build_commit']}, {rows[0]['cpu_info']}, "
      f"{rows[0]['n_threads']} threads)")
print("| test | tokens/s (mean ± sd) |")
print("|---|---:|")
for r in rows:
    t = f"pp{r['n_prompt']}" if r['n_prompt'] else f"tg{r['n_gen']}"
    print(f"| {t} | {r['avg_ts']:.2f} ± {r['stddev_ts']:.2f} |")
EOF
done
