# llamacpp_build.sh — sourced by the benchmark scripts that measure llama.cpp beside gemmac
# (llamacpp_reference.sh, quant_bench.sh): llama.cpp's source from PyPI's llama-cpp-python
# source distribution (no llama.cpp code lives in this repository), built once under a work
# directory. After `llamacpp_build WORKDIR TARGET...`:
#   LLAMA        the llama.cpp source tree (WORKDIR/llama_cpp_python-VERSION/vendor/llama.cpp)
#   LLAMA_BIN    its binaries (WORKDIR/build/bin), TARGETs built: Release, -DGGML_NATIVE=ON
#                (-march=native) without AMX, CPU only, $JOBS parallel jobs. AMX is left out
#                because the virtual machines here advertise it but fault on its first tile
#                instruction (llama-bench dies with SIGILL in ggml_backend_amx_mul_mat), and
#                gemmac does not use it either.
#   LLAMA_COMMIT the commit the sdist vendors
# Environment: LLAMACPP_PY_VERSION (0.3.36, which vendors llama.cpp 0c1e570), LLAMACPP_SDIST_SHA256
# (checked for 0.3.36 unless set empty), JOBS (2), PYTHON (python3). Every step is skipped when its
# output exists.

llamacpp_build() {
    local w=$1
    shift
    local version=${LLAMACPP_PY_VERSION:-0.3.36} sha=
    [ "$version" = 0.3.36 ] && sha=${LLAMACPP_SDIST_SHA256-832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e}
    local sdist=$w/sdist/llama_cpp_python-$version.tar.gz
    LLAMA=$w/llama_cpp_python-$version/vendor/llama.cpp
    LLAMA_BIN=$w/build/bin
    if [ ! -f "$sdist" ]; then
        echo "== downloading llama-cpp-python==$version sdist from PyPI" >&2
        "${PYTHON:-python3}" -m pip download --no-binary :all: --no-deps -d "$w/sdist" "llama-cpp-python==$version"
    fi
    if [ -n "$sha" ]; then
        echo "$sha  $sdist" | sha256sum -c --quiet - || { echo "sdist checksum differs" >&2; return 1; }
    fi
    [ -f "$LLAMA/convert_hf_to_gguf.py" ] || tar -xzf "$sdist" -C "$w"
    LLAMA_COMMIT=$(git -C "$LLAMA" rev-parse HEAD 2>/dev/null || echo unknown)
    local missing=()
    for t in "$@"; do [ -x "$LLAMA_BIN/$t" ] || missing+=("$t"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== building ${missing[*]} (Release, GGML_NATIVE=ON without AMX, CPU only, ${JOBS:-2} jobs)" >&2
    local no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    local gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S "$LLAMA" -B "$w/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
        -DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
    for t in "${missing[@]}"; do cmake --build "$w/build" --target "$t" -j "${JOBS:-2}" >&2; done
}
