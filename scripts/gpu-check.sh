#!/usr/bin/env bash
# gpu-check.sh — the NVPTX target on a GPU machine that has no LLVM and no
# package registry (a lent one), in one run: everything is compiled here
# first, where gemmac builds.
#
#   scripts/gpu-check.sh prepare      here: fills .gpu/ (git-ignored) with the oracle
#                                     cases compiled --target nvptx, the block-format and
#                                     bf16 cases (test_nvptx prepare), test_nvptx, the
#                                     benchmark linked with the 270M- and 2B-shaped models
#                                     (--emit lib; f32 and bf16 activations), their
#                                     safetensors headers, and the shared libraries they
#                                     need; where the real Gemma 3 270M is fetched, its GPU
#                                     executable and benchmark too, and the GGUF in parts
#                                     under .gpu-model/NN/ (git-ignored), a call's load each.
#                                     Then packs .gpu into .gpu-pack/gpu.tar.xz (about 6 MB
#                                     of its 40): the call that runs carries .gpu-pack
#   scripts/gpu-check.sh receive      there: keeps the parts of the real 270M that this call
#                                     carried (.gpu-model/NN); once all have come, joins them
#                                     where the tests look for it and checks its sha256
#   scripts/gpu-check.sh run OUT      there: unpacks .gpu-pack (with python3, which that
#                                     machine has), the GPU's bf16 matrix rate (PyTorch), the GPU
#                                     tests (test_nvptx gpu --prebuilt), then for both
#                                     shapes the GPU against the CPU (test_nvptx agree) and
#                                     bench/gpu_bench, and the real 270M's bench where it
#                                     was received; logs to OUT
#   scripts/gpu-check.sh profile OUT  there: each kernel's time in a decode step of both shapes (ncu)
#
# A call carries at most 64 MiB, the repository's 41 MB included, so the real 270M
# (253 MB) goes in parts of GM_PART_MB (default 22) MB, one part a call: run, for each
# NN, a call carrying .gpu-model/NN whose command is `scripts/gpu-check.sh receive`,
# back to back (the machine is given back after 30 s idle, and what it received
# with it); then the call that carries .gpu-pack and runs.
#
# The benchmark's checkpoints are random BF16 weights of the published shapes:
# on the GPU machine each is written from its header with a repeated block of
# random bf16 values (speed does not depend on the values; five GB of them take
# minutes to synthesise, seconds to write).
set -uo pipefail
cd "$(dirname "$0")/.."
G=.gpu
CASES="tiny-gemma1-mqa tiny-gemma1-mha tiny-gemma2 tiny-gemma2-bf16 tiny-gemma3 tiny-gemma3-1b medium-gemma1-bf16"
SHAPES="gemma-3-270m gemma-2b"
REAL=${GEMMAC_CACHE:-$HOME/.cache/gemmac}/gemma-3-270m-q4_k_m.gguf

prepare() {
  local tmp=${GM_SYNTH_DIR:-build/synth}
  rm -rf $G && mkdir -p $G/prebuilt $G/lib $G/bin $G/headers "$tmp"
  for c in $CASES; do build/gemmac compile tests/golden/$c --target nvptx -o $G/prebuilt/$c || exit 1; done
  build/tests/test_nvptx prepare build/gemmac $G/prebuilt > $G/prepare.log || { cat $G/prepare.log; exit 1; }
  cp build/tests/test_nvptx $G/bin/
  for l in libsentencepiece.so.0 libcjson.so.1 libcunit.so.1; do
    cp -L "$(ldconfig -p | awk -v l=$l '$1 == l { print $NF; exit }')" $G/lib/ || exit 1
  done
  for s in $SHAPES; do
    [ -f $tmp/$s/model.safetensors ] || build/synth_checkpoint tests/hf-configs/$s -o $tmp/$s --dtype bf16 || exit 1
    bench_lib $tmp/$s gpu_bench-$s f32
    bench_lib $tmp/$s gpu_bench-$s-bf16 bf16
    build/gemmac compile $tmp/$s --target x86_64-v3 -o $G/bin/cpu-$s || exit 1
    build/gemmac compile $tmp/$s --target nvptx --gpu sm_90 -o $G/bin/gpu-$s || exit 1
    local f=$tmp/$s/model.safetensors n
    n=$(od -An -t u8 -N 8 $f | tr -d ' ')
    head -c $((8 + n)) $f > $G/headers/$s.safetensors
    stat -c %s $f > $G/headers/$s.size
    cp $tmp/$s/config.json $G/headers/$s.config.json
    build/gemmac compile $tmp/$s --target nvptx --report > $G/headers/$s.report 2>/dev/null
    n=$(grep -o '[0-9]* kernel calls' $G/headers/$s.report | grep -o '^[0-9]*')
    # prefill: each node, and each attention's store; decode fuses some, so a step has at most n
    echo $((n + $(grep -c ' attention ' $G/headers/$s.report))) > $G/headers/$s.prefill-launches
    echo $n > $G/headers/$s.launches
  done
  [ -f "$REAL" ] && prepare_real
  du -sh $G
  mkdir -p .gpu-pack && tar cf - $G | xz -T2 -6 > .gpu-pack/gpu.tar.xz || exit 1
  du -sh .gpu-pack
}

# $G/bin/NAME: bench/gpu_bench linked with MODEL compiled for sm_90 with ACTIVATIONS.
bench_lib() {
  build/gemmac compile "$1" --target nvptx --gpu sm_90 --activations "$3" --emit lib -o $G/$2 || exit 1
  cc -O2 -I. bench/gpu_bench.c $G/$2.a -lsentencepiece -lcjson -lstdc++ -lm -lpthread -o $G/bin/$2 || exit 1
  rm -f $G/$2.a $G/$2.h
}

# There: .gpu from the pack the call carried (python3's tarfile: no xz needed).
unpack() {
  [ -f .gpu-pack/gpu.tar.xz ] || return 0
  python3 -c 'import tarfile; tarfile.open(".gpu-pack/gpu.tar.xz").extractall(".")' || { echo "unpack failed"; exit 1; }
}

# The real 270M: its GPU executable (test_nvptx's --prebuilt DIR/gemma-3-270m), its
# benchmark, and the GGUF in parts, each with the whole file's size and sha256.
prepare_real() {
  build/gemmac compile "$REAL" --target nvptx -o $G/prebuilt/gemma-3-270m || exit 1
  bench_lib "$REAL" gpu_bench-real f32
  rm -rf .gpu-model && mkdir -p .gpu-model
  split -b "${GM_PART_MB:-22}M" -d -a 2 "$REAL" .gpu-model/part-
  local parts sum
  parts=$(ls .gpu-model | wc -l) sum=$(sha256sum < "$REAL" | cut -d' ' -f1)
  for p in .gpu-model/part-*; do
    mkdir .gpu-model/${p##*-} && mv $p .gpu-model/${p##*-}/part
    echo "$parts $sum" > .gpu-model/${p##*-}/whole
  done
  echo "the real 270M in $parts parts: .gpu-model/00 ... .gpu-model/$(printf %02d $((parts - 1)))"
}

# There: the parts this call carried, kept in /tmp/gm-parts until all have come.
receive() {
  mkdir -p /tmp/gm-parts
  local d n sum
  for d in .gpu-model/*/; do [ -f $d/part ] && cp $d/part /tmp/gm-parts/$(basename $d) && read -r n sum < $d/whole; done
  [ -n "${n:-}" ] || { echo "receive: this call carried no part (.gpu-model/NN)"; return 1; }
  echo "received $(ls /tmp/gm-parts | wc -l) of $n parts"
  [ "$(ls /tmp/gm-parts | wc -l)" = "$n" ] || return 0
  mkdir -p "$(dirname "$REAL")" && cat /tmp/gm-parts/* > "$REAL.part"
  [ "$(sha256sum < "$REAL.part" | cut -d' ' -f1)" = "$sum" ] || { echo "receive: sha256 differs"; rm -f "$REAL.part"; return 1; }
  mv "$REAL.part" "$REAL" && echo "the real 270M is at $REAL"
}

# A checkpoint of the header's tensors: the header, then a block of random bf16 values repeated.
write_checkpoint() {
  mkdir -p "$2" && cp $G/headers/$1.config.json "$2/config.json"
  python3 - "$G/headers/$1.safetensors" "$(cat $G/headers/$1.size)" "$2/model.safetensors" <<'PY'
import sys, numpy as np
head, size, out = open(sys.argv[1], 'rb').read(), int(sys.argv[2]), sys.argv[3]
block = (np.random.default_rng(0).standard_normal(1 << 22).astype(np.float32) * 0.02).view(np.uint32) >> 16
block = block.astype(np.uint16).tobytes()
with open(out, 'wb') as f:
    f.write(head)
    left = size - len(head)
    while left > 0:
        f.write(block[:left]); left -= len(block)
PY
}

# The GPU's bf16 matrix rate as its own library reaches it (the ceiling that prefill's share is
# taken of): an 8192³ product through PyTorch, where the machine has it, random operands.
tensor_rate() {
  python3 - <<'PY' 2>&1 || echo "no PyTorch: no tensor-core rate"
import torch
a, b = (torch.randn(8192, 8192, dtype=torch.bfloat16, device='cuda') for _ in range(2))
for _ in range(3): a @ b
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
rates = []
for _ in range(5):
    start.record()
    for _ in range(10): a @ b
    end.record(); torch.cuda.synchronize()
    rates.append(2 * 8192**3 * 10 / (start.elapsed_time(end) / 1e3) / 1e12)
print("bf16 8192^3 matmul (PyTorch %s): %s TFLOP/s, median %.0f" % (torch.__version__, " ".join("%.0f" % r for r in rates), sorted(rates)[2]))
PY
}

run() {
  local out=$1
  unpack
  mkdir -p "$out"
  export LD_LIBRARY_PATH=$PWD/$G/lib GM_TEST_SOURCE_DIR=$PWD GM_TEST_BINARY_DIR=/tmp/gm-test
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
  tensor_rate | tee "$out/tensor-rate.txt"
  timeout 240 $G/bin/test_nvptx gpu --prebuilt $PWD/$G/prebuilt 2>&1 | tee "$out/test_nvptx_gpu.txt"
  if [ -f "$REAL" ] && [ -x $G/bin/gpu_bench-real ]; then
    timeout 120 $G/bin/gpu_bench-real "$REAL" --prompt 512 --gen 128 --reps 3 2>&1 | tee "$out/bench-real-270m.txt"
  fi
  for s in $SHAPES; do
    write_checkpoint $s /tmp/ckpt-$s
    timeout 200 $G/bin/test_nvptx agree $PWD/$G/bin/cpu-$s $PWD/$G/bin/gpu-$s /tmp/ckpt-$s 2>&1 | tee "$out/agree-$s.txt"
    # as shipped (graphs and programmatic launch), without programmatic launch, without either
    timeout 120 $G/bin/gpu_bench-$s /tmp/ckpt-$s/model.safetensors --prompt 512 --gen 128 --reps 3 2>&1 | tee "$out/bench-$s.txt"
    GEMMAC_CUDA_PDL=0 timeout 120 $G/bin/gpu_bench-$s /tmp/ckpt-$s/model.safetensors --prompt 512 --gen 128 \
      --reps 3 2>&1 | tee "$out/bench-$s-no-pdl.txt"
    GEMMAC_CUDA_PDL=0 GEMMAC_CUDA_GRAPHS=0 timeout 120 $G/bin/gpu_bench-$s /tmp/ckpt-$s/model.safetensors --prompt 512 \
      --gen 128 --reps 3 2>&1 | tee "$out/bench-$s-plain.txt"
    # --activations bf16: prefill on the tensor cores
    timeout 120 $G/bin/gpu_bench-$s-bf16 /tmp/ckpt-$s/model.safetensors --prompt 512 --gen 128 --reps 3 2>&1 |
      tee "$out/bench-$s-bf16.txt"
  done
}

# Each kernel's time in decode steps of each shape (from the third step after a
# 64-token prefill on, at least one whole step: each begins with the embed
# kernel) and in the 2B's 512-token prefill, by Nsight Compute where the machine
# has it.
profile() {
  local ncu n s
  unpack
  export LD_LIBRARY_PATH=$PWD/$G/lib
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu" ] || { echo "no ncu: no profile" | tee "$1/profile.txt"; return; }
  for s in $SHAPES; do
    [ -f /tmp/ckpt-$s/model.safetensors ] || write_checkpoint $s /tmp/ckpt-$s
    n=$(cat $G/headers/$s.launches)
    timeout 150 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip $((3 * n)) \
      --launch-count $((2 * n)) $G/bin/gpu_bench-$s /tmp/ckpt-$s/model.safetensors --prompt 64 --gen 4 --reps 1 \
      > "$1/profile-$s.csv" 2> "$1/profile-$s.err"
    tail -2 "$1/profile-$s.err"
  done
  n=$(cat $G/headers/gemma-2b.prefill-launches)  # and the 2B's 512-token prefill
  timeout 150 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --launch-count "$n" \
    $G/bin/gpu_bench-gemma-2b /tmp/ckpt-gemma-2b/model.safetensors --prompt 512 --gen 1 --reps 0 \
    > "$1/profile-prefill-gemma-2b.csv" 2>&1
}

case "${1:-}" in
prepare) prepare ;;
receive) receive ;;
run) run "${2:?run needs an output folder}" ;;
profile) mkdir -p "${2:?profile needs an output folder}" && profile "$2" ;;
*) echo "usage: scripts/gpu-check.sh prepare | receive | run OUT | profile OUT" >&2; exit 2 ;;
esac
