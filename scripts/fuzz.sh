#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer harnesses of tests/fuzz/ with ASan and UBSan
# (clang-19 and libclang-rt-19-dev from Debian) and runs each for a while.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS ...]     (default 60 s; all of tests/fuzz/fuzz_*.c)
#
# Seeds come from the test fixtures (tests/fuzz/seeds/NAME/, kept) and each
# run's finds stay in build/fuzz/corpus/NAME/. A crash, leak, timeout or
# sanitizer report stops the harness with its input in build/fuzz/; keep it in
# tests/fuzz/seeds/NAME/ once fixed, as a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=${*:-$(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_\(.*\)\.c|\1|')}
cc=clang-19
command -v $cc >/dev/null || { echo "fuzz.sh: needs clang-19 and libclang-rt-19-dev (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }
mkdir -p build/fuzz
runtime="runtime/common.c runtime/safetensors.c runtime/gguf.c runtime/quant.c runtime/threads.c"
status=0
for h in $harnesses; do
  $cc -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -Iruntime \
      tests/fuzz/fuzz_$h.c $runtime $(pkg-config --cflags --libs libcjson) -lm -lpthread -o build/fuzz/fuzz_$h
  mkdir -p build/fuzz/corpus/$h
  seeds=tests/fuzz/seeds/$h
  (cd build/fuzz && ./fuzz_$h -max_total_time=$seconds -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
     corpus/$h ../../$seeds 2>&1 | tail -12) || status=1
done
exit $status
