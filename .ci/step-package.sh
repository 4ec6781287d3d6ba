#!/usr/bin/env bash
# Packages every published crate and builds each one from its own tarball, with all its
# features, against the others' tarballs (cargo puts them in a local registry for the run):
# a file the code includes from outside the crate directory, a dependency without a version,
# or a dev-dependency cycle between published crates fails here rather than at release.
# The crates with `publish = false` (test support, end-to-end tests, examples, benchmarks)
# are left out: `cargo package` would otherwise package them too.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

if ! command -v jq >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y jq >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y jq >/dev/null; }
fi
unpublished=$(cargo metadata --no-deps --format-version 1 \
    | jq -r '.packages[] | select(.publish == []) | .name')
exclude=()
for name in $unpublished; do
    exclude+=(--exclude "$name")
done
echo "not packaged (publish = false):" $unpublished
# --allow-dirty: earlier CI steps and local work may leave files changed; what matters here is
# what each crate directory holds, not whether it is committed.
cargo package --workspace "${exclude[@]}" --all-features --allow-dirty
