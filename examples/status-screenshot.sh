#!/usr/bin/env bash
# Makes docs/status.png, the README's picture of the status page: starts the
# seed's setup on loopback (examples/status_screenshot.rs: real httpd and
# Squids, a cache group with a hostile cache, traffic, one Squid stopped),
# photographs /icpquery-status with headless Chromium at 1280 px, and stops
# everything. An argument names another output file.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh
cargo build --release --locked
cargo run --release --locked --quiet --example status_screenshot -- "${1:-docs/status.png}"
