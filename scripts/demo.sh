#!/usr/bin/env bash
# Builds the library (release) and the C example, creates a repository with several packs and a
# multi-pack-index, and reads it through odbpack registered in the system's libgit2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
mkdir -p examples/bin
cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -Iinclude $(pkg-config --cflags libgit2) \
  examples/cat_file.c -o examples/bin/cat_file -Ltarget/release -lodbpack $(pkg-config --libs libgit2) \
  -Wl,-rpath,"$PWD/target/release"

repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com \
  GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com GIT_AUTHOR_DATE="1700000000 +0000" \
  GIT_COMMITTER_DATE="1700000000 +0000"
git -C "$repo" -c init.defaultBranch=main init -q
for pack in 1 2 3; do
  for i in $(seq 1 5); do seq 1 $((pack * 300 + i * 7)) > "$repo/file$i.txt"; git -C "$repo" add -A; git -C "$repo" commit -qm "pack $pack commit $i"; done
  git -C "$repo" repack -dq
done
git -C "$repo" multi-pack-index write
git -C "$repo" prune-packed
objects="$repo/.git/objects"
echo "== $(ls "$objects/pack"/*.pack | wc -l) packs + multi-pack-index in $objects"
head=$(git -C "$repo" rev-parse HEAD)
echo "== examples/bin/cat_file $objects -p ${head:0:8}"
examples/bin/cat_file "$objects" -p "${head:0:8}"
git -C "$repo" cat-file --batch-all-objects --batch-check='%(objectname)' > "$repo/ids"
examples/bin/cat_file "$objects" --batch < "$repo/ids" > "$repo/ours"
git -C "$repo" cat-file --batch < "$repo/ids" > "$repo/git"
if cmp -s "$repo/ours" "$repo/git"; then
  echo "== all $(wc -l < "$repo/ids") objects read through odbpack are identical to git cat-file --batch"
else
  echo "== MISMATCH between odbpack and git cat-file" >&2; exit 1
fi
