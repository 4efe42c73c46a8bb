#!/usr/bin/env bash
# Runs the benchmarks and prints one summary table with ratios against
# baselines measured in the same run, and ✓/✗ against each target.
#
#   bench/run.sh                      the default set (about 9 minutes on 2 cores)
#   bench/run.sh latency|throughput|dead|memory|balancer [...]   only those
#   bench/run.sh hit-ratio            cluster hit ratio by routing rule, with and
#                                     without the answer memory, and while the
#                                     caches' membership changes (not in the
#                                     default set; about 10 minutes,
#                                     127.0.100.x-127.0.108.x, 127.0.114.x-
#                                     127.0.118.x; knobs BENCH_HR_*, see
#                                     bench/README.md)
#
# Builds the module (release) first, installs wrk (and, through tests/deps.sh,
# httpd, Squid and clang) with apt-get when missing. Everything runs on
# loopback, 127.0.60.x-127.0.66.x; every process started is stopped again.
# Timing never makes this script fail: it exits non-zero only when a
# benchmark could not run. Knobs (environment): BENCH_LATENCY_SAMPLES,
# BENCH_THROUGHPUT_SECONDS, BENCH_THROUGHPUT_ROUNDS, BENCH_PERF,
# BENCH_DEAD_TIME, BENCH_DEAD_CONFIGS, BENCH_DEAD_LOG, BENCH_MEMORY_SECONDS,
# BENCH_MEMORY_LOOKUPS, BENCH_BAL_* (balancer: URLS, SECONDS, ROUNDS, WARMUP,
# CONNS, POPULARITY, CONFIGS, REMEMBER, TARGET, REQUIRE_ALL), BENCH_HR_*
# (hit ratio); bench/README.md lists them with their defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(latency throughput dead memory balancer)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
for b in "${selected[@]}"; do
    case "$b" in
        latency | throughput | dead | memory | balancer | hit-ratio) ;;
        *) echo "usage: $0 [latency|throughput|dead|memory|balancer|hit-ratio]..." >&2; exit 2 ;;
    esac
done

# What the tests need, and wrk (the load generator of throughput, memory and
# balancer).
tests/deps.sh wrk

summary=$(mktemp /tmp/mod_icpquery-bench-summary.XXXXXX)
trap 'rm -f "$summary"' EXIT
export BENCH_SUMMARY="$summary"

# Others may be editing src/ while this runs: the harness then refuses the
# module as stale, and a build may fail half-way through someone's change.
# Both are retried (build again, wait a minute) a few times.
build() {
    for attempt in 1 2 3 4 5; do
        cargo build --release --locked && return 0
        echo "cargo build --release failed (attempt $attempt); retrying in 60 s" >&2
        sleep 60
    done
    return 1
}

failed=()
started=$(date +%s)
for b in "${selected[@]}"; do
    target=$b
    [ "$b" = dead ] && target=dead_caches
    [ "$b" = hit-ratio ] && target=hit_ratio
    ok=0
    for attempt in 1 2 3; do
        # The harness refuses a module older than src/: build right before each run.
        build || break
        echo "==================== $target ====================" >&2
        log=$(mktemp /tmp/mod_icpquery-bench-$target.XXXXXX)
        if cargo bench --locked --bench "$target" 2>&1 | tee "$log"; then
            ok=1
        fi
        stale=$(grep -c "run cargo build --release" "$log" || true)
        rm -f "$log"
        [ $ok -eq 1 ] && break
        [ "$stale" -gt 0 ] || break
        echo "the module went stale during the run (src/ changed); rebuilding and running $target again" >&2
        # Rows a failed attempt may have written are dropped with it.
        grep -v "^$target	\|^#	$target" "$summary" >"$summary.keep" || true
        mv "$summary.keep" "$summary"
    done
    if [ $ok -eq 0 ]; then
        failed+=("$target")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "(did not run to the end)" "-" "-" "-" "-" "✗" >>"$summary"
    fi
done

echo
echo "==================== summary ($(( $(date +%s) - started )) s, $(nproc) cores) ===================="
{
    printf 'benchmark\tcase\tmeasured\tbaseline (same run)\tratio\ttarget\t\n'
    grep -v '^#' "$summary" || true
} | column -t -s $'\t'
grep '^#' "$summary" | sed 's/^#\t/  * /' || true
[ ${#failed[@]} -eq 0 ] || { echo "benchmarks that did not complete: ${failed[*]}" >&2; exit 1; }
