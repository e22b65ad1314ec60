#!/usr/bin/env bash
# make-golden.sh [WORKDIR] — remakes tests/quantize/*.bin with llama.cpp's own quantizers
# and checks gemmac's encoders against them (README.md says what each file is).
#
#   1. pip-downloads the llama-cpp-python 0.3.36 sdist (it vendors llama.cpp 0c1e570),
#      checks its sha256 and unpacks it under WORKDIR (default: a fresh mktemp -d);
#   2. compiles golden_gen.c with llama.cpp's ggml/src/ggml-quants.c and gemmac's
#      runtime/quant.c and runtime/common.c: gcc -O2 -DNDEBUG -ffp-contract=off (NDEBUG as in
#      llama.cpp's release builds: its nearest_int asserts |x| < 2^22, which inputs with
#      f16-subnormal scales break; the release build rounds them as gemmac does);
#   3. golden_gen golden: writes input.f32 and <type>.bin for the eight block formats from
#      quantize_row_<type>_ref, and says whether gemmac's bytes are identical;
#   4. golden_gen fuzz 200000: both on 200000 random 256-value inputs of nine kinds;
#   5. check_gguf_py.py: gguf-py's numpy quantizers (the sdist's gguf-py, numpy from PyPI in
#      a venv; pyyaml, which gguf-py imports) on the same input must give the 32-element formats' bytes, and write
#      f16.bin and bf16.bin.
# Nothing is written outside WORKDIR but the files in this folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
W=${1:-$(mktemp -d)}
mkdir -p "$W"
version=0.3.36
sha=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
sdist=$W/llama_cpp_python-$version.tar.gz
[ -f "$sdist" ] || python3 -m pip download --no-binary :all: --no-deps -d "$W" "llama-cpp-python==$version"
echo "$sha  $sdist" | sha256sum -c --quiet -
[ -d "$W/llama_cpp_python-$version" ] || tar -xzf "$sdist" -C "$W"
L=$W/llama_cpp_python-$version/vendor/llama.cpp
G=$L/ggml
gcc -O2 -DNDEBUG -ffp-contract=off -std=gnu11 -I"$G/include" -I"$G/src" -I"$G/src/ggml-cpu" \
    -c "$G/src/ggml-quants.c" -o "$W/ggml-quants.o"
gcc -O2 -DNDEBUG -ffp-contract=off -std=gnu11 -I"$root" "$here/golden_gen.c" "$root/runtime/quant.c" \
    "$root/runtime/common.c" "$W/ggml-quants.o" -lcjson -lm -o "$W/golden_gen"
"$W/golden_gen" golden "$here"
"$W/golden_gen" fuzz 200000
[ -x "$W/venv/bin/python" ] || { python3 -m venv "$W/venv" && "$W/venv/bin/pip" install -q numpy pyyaml; }
PYTHONPATH=$L/gguf-py "$W/venv/bin/python" "$here/check_gguf_py.py" "$here"
