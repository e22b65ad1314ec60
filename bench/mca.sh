#!/usr/bin/env bash
# mca.sh — the matmul kernels' hot loops on paper, for CPUs this project has no
# hardware of: llvm-mca (LLVM 19) on the innermost loops of a bf16 matmul_add
# kernel (medium-gemma1-bf16, -O2, panel weights) as gemmac emits them for
# Neoverse V1 (--target aarch64 --cpu neoverse-v1) and Zen 4 (--target
# x86_64-v4, llvm-mca -mcpu=znver4). The prefill tile is the loop with the
# most FMAs (MR rows × 32 columns a step of k), the decode stream the loop of
# one row that prefetches (16-bit weights are prefetched ahead). The FMA peak
# per cycle is llvm-mca's own throughput for a block of independent FMAs of
# the same width on the same CPU.
#   bench/mca.sh [build/gemmac]
set -euo pipefail
cd "$(dirname "$0")/.."
gemmac=${1:-build/gemmac}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The innermost loops of the first function named $2 in $1, as "fmas prefetches file" lines.
loops() {
  awk -v fn="$2" -v dir="$tmp" '
    /^gm_[a-z_0-9]*:/ { name = $1; sub(":", "", name); active = (index(name, fn) == 1 && !done); if (seen && !active) done = 1; seen = seen || active }
    /^\.[A-Za-z0-9_]*:/ { label = $1; sub(":", "", label) }
    active && /Inner Loop Header/ { n++; file = dir "/loop" n ".s"; body = 1; fmas = 0; pf = 0; next }
    body && $0 ~ ("\t" label "$") && $1 ~ /^(j|b|cb|tb)/ { body = 0; print fmas, pf, file; next }
    body && $0 !~ /^[ \t]*(#|\/\/|\.)/ && NF { print > file; if ($1 ~ /^(vfmadd|fmla)/) fmas++; if ($1 ~ /^(prefetch|prfm)/) pf++ }
  ' "$1"
}

# Cycles per iteration of a block (llvm-mca's Block RThroughput).
cycles() { llvm-mca-19 -mtriple="$1" -mcpu="$2" -iterations=200 "$3" 2>/dev/null | awk '/Block RThroughput/ { print $3 }'; }

report() { # triple cpu target-flags fma (ACC, SA, SB: the accumulator and the sources)
  local triple=$1 cpu=$2 flags=$3 fma=$4 asm=$tmp/k.s peak tile stream c line
  "$gemmac" compile tests/golden/medium-gemma1-bf16 $flags --emit asm -o "$asm" 2>/dev/null
  for i in $(seq 0 15); do
    line=${fma//ACC/$i}; line=${line//SA/$((16 + i % 8))}; echo "${line//SB/$((24 + i % 8))}"
  done > "$tmp/peak.s"
  peak=$(awk -v c="$(cycles "$triple" "$cpu" "$tmp/peak.s")" 'BEGIN { printf "%.2f", 16 / c }')
  loops "$asm" gm_matmul_add > "$tmp/loops"
  tile=$(sort -n -k1 "$tmp/loops" | tail -1)
  stream=$(awk '$2 > 0' "$tmp/loops" | sort -n -k1 | head -1)
  for which in tile stream; do
    set -- ${!which}
    c=$(cycles "$triple" "$cpu" "$3")
    awk -v w="$which" -v cpu="$cpu" -v f="$1" -v c="$c" -v p="$peak" -v n="$(wc -l < "$3")" 'BEGIN {
      printf "%-12s %-7s %3d instructions, %2d FMAs: %6.2f cycles/iteration, %.2f FMAs/cycle of a peak of %.2f (%.0f %%)\n",
             cpu, w, n, f, c, f / c, p, 100 * f / c / p }'
  done
}

report aarch64-unknown-linux-gnu neoverse-v1 "--target aarch64 --cpu neoverse-v1" "fmla vACC.4s, vSA.4s, vSB.4s"
report x86_64-unknown-linux-gnu znver4 "--target x86_64-v4" "vfmadd231ps %zmmSA, %zmmSB, %zmmACC"
