#!/usr/bin/env bash
# Installs what the demo and the tests need beyond Rust, a C compiler and git: a system libgit2
# with headers (the C examples link Debian's shared libgit2, a different copy from the vendored
# one the Rust tests use), pkg-config, and valgrind. No-op when everything is present.
set -euo pipefail
missing=()
command -v pkg-config >/dev/null && pkg-config --exists libgit2 2>/dev/null || missing+=(pkg-config libgit2-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v nm >/dev/null || missing+=(binutils)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
