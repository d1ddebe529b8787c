#!/usr/bin/env bash
# Runs every test: Rust unit tests (parsers on in-memory bytes), integration tests against git
# and libgit2 (vendored 1.9.7), the C examples against the system libgit2 (and once under
# valgrind), then checks that the committed include/odbpack.h matches the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The C examples link target/debug/libodbpack.so, which `cargo test` alone does not produce.
cargo build --locked
cargo test --locked "$@"
if ! git diff --exit-code --stat -- include/odbpack.h; then
  echo "include/odbpack.h is out of date: the build regenerated it; commit the new header." >&2
  exit 1
fi
