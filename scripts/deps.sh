#!/usr/bin/env bash
# deps.sh — make sure the Debian packages gemmac builds and tests with are
# installed: as root it installs what is missing with apt-get; otherwise it
# prints the exact apt-get line to run and fails.
set -euo pipefail
packages=(build-essential cmake pkg-config llvm-19-dev libzstd-dev libcjson-dev
          libopenblas-dev libcunit1-dev libsentencepiece-dev sentencepiece)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "gemmac: missing Debian packages: ${missing[*]}" >&2
  echo "run as root:  $line" >&2
  exit 1
fi
echo "gemmac: installing ${missing[*]}" >&2
bash -c "$line" >&2
