#!/usr/bin/env bash
# deps.sh — make sure the Debian packages gemmac builds and tests with are
# installed: as root it installs what is missing with apt-get; otherwise it
# prints the exact apt-get line to run and fails. The aarch64 target adds
# Debian's cross toolchain, qemu-user and arm64 libraries (multiarch), and
# the arm64 SentencePiece, which cannot be installed beside the host's, is
# unpacked into build/aarch64-deps, where the build and gemmac find it.
# clang-19 and its sanitizer runtimes build the fuzz harnesses (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(build-essential cmake pkg-config llvm-19-dev libzstd-dev libcjson-dev
          libopenblas-dev libcunit1-dev libsentencepiece-dev sentencepiece clang-19 libclang-rt-19-dev
          gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libcjson-dev:arm64 libopenblas-dev:arm64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  arch=""
  dpkg --print-foreign-architectures | grep -qx arm64 || arch="dpkg --add-architecture arm64 && "
  line="${arch}apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "gemmac: missing Debian packages: ${missing[*]}" >&2
    echo "run as root:  $line" >&2
    exit 1
  fi
  echo "gemmac: installing ${missing[*]}" >&2
  bash -c "$line" >&2
fi
deps=build/aarch64-deps
if [ ! -f $deps/usr/include/sentencepiece_processor.h ]; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download libsentencepiece0:arm64 libsentencepiece-dev:arm64) >/dev/null 2>&1; then
    mkdir -p $deps && for d in "$tmp"/*.deb; do dpkg -x "$d" $deps; done
  else
    echo "gemmac: could not download the arm64 SentencePiece: the aarch64 target stays unbuilt" >&2
  fi
  rm -rf "$tmp"
fi
