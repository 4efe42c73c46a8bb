#!/usr/bin/env bash
# Runs the original module's example setup on loopback: a portal httpd with
# mod_icpquery, three Squid accelerators and their origins. Prints which
# cache served each request and the module's log, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh
cargo build --release --locked
cargo run --release --locked --quiet --example demo
