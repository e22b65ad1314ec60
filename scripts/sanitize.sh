#!/usr/bin/env bash
# sanitize.sh — the test suite under sanitizers, each mode in a build folder
# of its own (the normal build in build/ is left alone):
#
#   scripts/sanitize.sh [address]   ASan + UBSan (-fno-sanitize-recover=undefined,
#                                   LeakSanitizer on) over every ctest test, into build-asan/
#   scripts/sanitize.sh thread      ThreadSanitizer over tests that run the thread pool
#                                   (runtime/threads.c), into build-tsan/
#
# gcc instruments gemmac's own code; LLVM, SentencePiece, OpenBLAS and the JIT's
# kernels are not instrumented. Programs that gemmac compile links for this
# machine get the same sanitizers (CMake's GM_SANITIZE_LINK), since they link
# this build's libraries. No report is suppressed. Fails when a test fails or a
# sanitizer reports.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-address}
case $mode in
  address)
    dir=build-asan sanitize=address,undefined
    # test_aarch64: its executables are cross-compiled without sanitizers and run under
    #   qemu; the aarch64 runtime is not built here (no build-asan/aarch64-deps), so it
    #   would only skip.
    # test_nvptx_gpu: needs an NVIDIA GPU (skips without one); the GPU engine's host side
    #   is exercised by test_nvptx_ptx.
    # test_nvptx_emu: its emulated GPU threads are fibers that jump between stacks, which ASan
    #   does not follow (it warns, and took over 15 min here); the kernels it runs are JIT code
    #   that ASan does not instrument either.
    exclude="^(test_aarch64|test_nvptx_gpu|test_nvptx_emu)$"
    tests="" ;;
  thread)
    dir=build-tsan sanitize=thread
    # The pool's own test, and the two users of the pool: the CPU engine (matmuls split
    # over it: test_jit_cache's prefills of an oracle case, test_batch's batched decodes)
    # and the GGUF reader (Q2_K/Q3_K decoded in parallel). test_golden runs the same engine over every case and pass
    # subset: 10.5 min under TSan here, too long for CI.
    tests="test_threads test_jit_cache test_gguf test_batch"
    # OpenBLAS (the reference backend's matmul) one-threaded: its own pool syncs by spinning
    # on flags in uninstrumented code, which TSan reports as races inside sgemm.
    export OPENBLAS_NUM_THREADS=1
    exclude="" ;;
  *) echo "usage: scripts/sanitize.sh [address|thread]" >&2; exit 2 ;;
esac
bash scripts/deps.sh
cmake -S . -B $dir -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_WERROR=ON -DGM_SANITIZE=$sanitize >/dev/null
cmake --build $dir -j"$(nproc)" ${tests:+--target $tests gemmac}
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
export GEMMAC_THREADS=4 # more workers than cores: more interleavings for TSan, more sharing for ASan
cd $dir
start=$(date +%s)
if [ -n "$tests" ]; then
  ctest --output-on-failure -j"$(nproc)" -R "^($(echo $tests | tr ' ' '|'))$"
else
  ctest --output-on-failure -j"$(nproc)" ${exclude:+-E "$exclude"}
fi
echo "sanitize.sh $mode: ctest passed in $(( $(date +%s) - start )) s"
