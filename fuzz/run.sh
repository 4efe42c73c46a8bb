#!/usr/bin/env bash
# Builds the libFuzzer targets on the stable toolchain (only crates needed, no
# cargo-fuzz, no nightly) and runs each for SECONDS, starting from the
# committed seeds. Fails on a crash, a build error, or a run that executed
# nothing; it never skips.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 50 s each, all targets
#
# Crash inputs go to fuzz/artifacts/<target>/; new interesting inputs to
# fuzz/corpus/<target>/ (both git-ignored). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-50}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(icp_decode directive_values)

# libfuzzer-sys compiles libFuzzer itself, which is C++.
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "fuzz: installing g++ (libFuzzer is C++)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends g++ >&2
fi

# The instrumentation cargo-fuzz adds with `--sanitizer none`; all stable
# flags. An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --locked --release --target "$host" --bins

summary=()
for t in "${targets[@]}"; do
    bin="target/$host/release/$t"
    [ -x "$bin" ] || { echo "fuzz: $bin was not built" >&2; exit 1; }
    [ -d "seeds/$t" ] || { echo "fuzz: no seeds/$t" >&2; exit 1; }
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    echo "fuzz: $t for ${secs}s" >&2
    status=0
    "$bin" "corpus/$t" "seeds/$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+.*(INITED|DONE)|Done |==[0-9]+==|SUMMARY|stat::number_of_executed_units)' "$log" >&2 || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -ne 0 ] || [ -z "$runs" ] || [ "$runs" -eq 0 ]; then
        echo "fuzz: $t FAILED (exit $status, ${runs:-no} executions); log: fuzz/$log" >&2
        tail -40 "$log" >&2
        ls -l "artifacts/$t/" >&2
        exit 1
    fi
    summary+=("$t: $runs executions in ${secs}s")
done
printf 'fuzz: %s\n' "${summary[@]}"
# The plain closing line test reports read: every target ran and none crashed.
echo "fuzz: ${#targets[@]} passed, 0 failed"
