#!/usr/bin/env bash
# Every feature of the web crates on its own, none, the defaults and all of them (what
# `cargo hack --each-feature` would run, without installing it). Each run builds the one crate
# alone, so no other workspace member turns a feature on behind its back, and lints its tests
# too: a test that needs a feature declares it with `required-features`, or `#[cfg(feature)]`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

check() {
    local crate="$1"
    shift
    echo "--- $crate $*"
    cargo clippy -q -p "$crate" --all-targets "$@" -- -D warnings
}

# The features a crate declares, `default` left out, from its manifest.
features() {
    sed -n '/^\[features\]/,/^\[/p' "$1/Cargo.toml" \
        | sed -n 's/^\([a-z0-9_-]*\) *=.*/\1/p' \
        | grep -vx default
}

for crate in threadline-axum threadline-actix; do
    check "$crate" --no-default-features
    for feature in $(features "$crate"); do
        check "$crate" --no-default-features --features "$feature"
    done
    check "$crate"
    check "$crate" --all-features
done
# The CLI without its default `parquet` feature (archive writes NDJSON only).
check threadline-cli --no-default-features
