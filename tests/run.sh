#!/usr/bin/env bash
# The whole test suite: codec and parser unit tests, the engine over real
# UDP, and real httpd + Squid integration tests on loopback addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh
# The integration tests load the built module into httpd.
cargo build --release --locked
cargo test --release --locked --no-fail-fast
# Bounded fuzzing, 50 s per target from the committed seeds (fuzz/README.md:
# longer runs); fails on any crash, never skips.
bash fuzz/run.sh 50
