#!/usr/bin/env bash
# Measure how the throughput of background invocations scales with the number of
# `amqp-retry worker` processes on the local three-node RabbitMQ cluster
# (deploy/with-cluster.sh, quorum queues).
#
#   Benchmarks/cluster-scaling.sh [WORKER_COUNT...]     (default: 1 2 4)
#
# For each worker count, the test ClusterScalingBenchmark publishes a batch of
# demo.echo invocations with callbacks while no worker runs. Then it starts the
# workers, each with a different first node in its URL list, and measures from
# the first finished call to the last callback. The script prints a Markdown
# table with one row per worker count on stdout, and progress on stderr.
#
# Environment:
#   AMQPRETRY_SCALING_INVOCATIONS  the batch per run (default 5000)
#   AMQPRETRY_SCALING_CONCURRENCY  the --concurrency of each worker (default 8)
#   AMQPRETRY_SCALING_SCRATCH      the release build folder (default .build/cluster-scaling)
#
# The test and the workers run as a release build, which the script makes first.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

worker_counts=("$@")
if (( ${#worker_counts[@]} == 0 )); then
    worker_counts=(1 2 4)
fi
for count in "${worker_counts[@]}"; do
    [[ "$count" =~ ^[1-9][0-9]*$ ]] || { echo "error: worker count '$count' is invalid; use whole numbers of at least 1" >&2; exit 64; }
done
scratch="${AMQPRETRY_SCALING_SCRATCH:-.build/cluster-scaling}"

# The script builds, then runs itself again inside deploy/with-cluster.sh, which
# starts the cluster and stops it at the end.
if [[ "${AMQPRETRY_SCALING_IN_CLUSTER:-0}" != 1 ]]; then
    echo "Building the release build in $scratch..." >&2
    swift build -c release --build-tests -Xswiftc -enable-testing --scratch-path "$scratch" >&2
    AMQPRETRY_SCALING_IN_CLUSTER=1 exec deploy/with-cluster.sh "$0" "${worker_counts[@]}"
fi

echo "| workers | concurrency each | invocations | seconds | invocations/s |"
echo "|---|---|---|---|---|"
for count in "${worker_counts[@]}"; do
    echo "Measuring with $count worker process(es)..." >&2
    log="$(mktemp)"
    if ! AMQPRETRY_SCALING_WORKERS="$count" swift test -c release --skip-build \
        --scratch-path "$scratch" --disable-swift-testing --filter 'ClusterScalingBenchmark' >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "error: the measurement with $count worker process(es) failed" >&2
        exit 1
    fi
    result="$(grep -o 'cluster scaling: .*' "$log" | tail -n 1)"
    rm -f "$log"
    # result: cluster scaling: workers=N concurrency=C invocations=I seconds=S rate=R/s
    read -r workers concurrency invocations seconds rate < <(
        sed -E 's/.*workers=([0-9]+) concurrency=([0-9]+) invocations=([0-9]+) seconds=([0-9.]+) rate=([0-9]+).*/\1 \2 \3 \4 \5/' <<<"$result")
    echo "| $workers | $concurrency | $invocations | $seconds | $rate |"
done
