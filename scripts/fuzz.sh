#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer harnesses of tests/fuzz/ with ASan and UBSan
# (clang-19 and libclang-rt-19-dev from Debian) and runs each for a while.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS ...]     (default 60 s; all of tests/fuzz/fuzz_*.c)
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 3600 ... (each stops at SECONDS or that many runs)
#
# Each harness links only the sources it needs (`sources` below; none pulls
# LLVM), compiled once per run into build/fuzz/obj. Seeds come from the test
# fixtures (tests/fuzz/seeds/NAME/, kept) and each run's finds stay in
# build/fuzz/corpus/NAME/. A crash, leak, timeout or sanitizer report stops
# the harness with its input in build/fuzz/; keep it in tests/fuzz/seeds/NAME/
# once fixed, as a regression input. The last line of each harness is
# libFuzzer's count of runs; the script fails if any harness reported.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_\(.*\)\.c|\1|')}
command -v clang-19 >/dev/null && [ -d /usr/lib/llvm-19/lib/clang/19/lib/linux ] ||
  { echo "fuzz.sh: needs clang-19 and libclang-rt-19-dev (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }

common="runtime/common.c runtime/quant.c"
checkpoints="$common runtime/safetensors.c runtime/gguf.c runtime/threads.c"
ir="ir/ir.c ir/verify.c ir/print.c"
sources() {
  case $1 in
    gguf | safetensors | quant) echo "$checkpoints" ;;
    description) echo "$checkpoints $ir compiler/frontend.c compiler/pipeline.c compiler/targets.c compiler/passes/*.c" ;;
    import | import_gguf) echo "$checkpoints $ir compiler/frontend.c compiler/import.c compiler/import_gguf.c compiler/json_format.c" ;;
    tokenizer) echo "$common runtime/tokenizer.cc" ;;
    generate) echo "$common runtime/tokenizer.cc runtime/sampler.c runtime/generate.c" ;;
    cli_number) echo "$common compiler/cli_number.c" ;;
    *) echo "fuzz.sh: no source list for harness $1" >&2; return 1 ;;
  esac
}

flags="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I. -Iruntime
       -DGM_SOURCE_DIR=\"$PWD\" -DGM_VERSION=\"fuzz\""
mkdir -p build/fuzz/obj
declare -A built
object() { # compiles $1 once per run; prints its object
  local o=build/fuzz/obj/$(echo "$1" | tr / _).o
  if [ -z "${built[$1]:-}" ]; then
    case $1 in
      *.cc) clang++-19 -std=c++17 $flags $(pkg-config --cflags libcjson) -c "$1" -o "$o" ;;
      *) clang-19 -std=gnu11 $flags $(pkg-config --cflags libcjson) -c "$1" -o "$o" ;;
    esac
    built[$1]=1
  fi
  echo "$o"
}

status=0
for h in $harnesses; do
  objs=()
  for s in tests/fuzz/fuzz_$h.c $(sources "$h"); do objs+=("$(object "$s")"); done
  clang++-19 -fsanitize=fuzzer,address,undefined "${objs[@]}" $(pkg-config --libs libcjson) -lsentencepiece \
    -lm -lpthread -o build/fuzz/fuzz_$h
  mkdir -p build/fuzz/corpus/$h
  echo "== fuzz_$h ($seconds s)"
  if ! (cd build/fuzz && ./fuzz_$h -max_total_time="$seconds" -runs="${FUZZ_RUNS:--1}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
          corpus/$h ../../tests/fuzz/seeds/$h >log_$h.txt 2>&1); then
    status=1
    grep -A30 -m1 "ERROR\|runtime error\|==ERROR\|deadly signal\|timeout" build/fuzz/log_$h.txt | head -40 >&2 || true
    echo "fuzz_$h: FAILED (build/fuzz/log_$h.txt; the input is in build/fuzz/)" >&2
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build/fuzz/log_$h.txt | tr '\n' ' ' || true
  echo
done
exit $status
