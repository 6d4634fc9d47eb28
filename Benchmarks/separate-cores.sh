#!/usr/bin/env bash
# Run a command with the private RabbitMQ node and the command on separate CPUs:
#   deploy/with-broker.sh Benchmarks/separate-cores.sh CMD [ARG...]
#
# The node's Erlang VM (every thread) gets the first half of the online CPUs
# and the command the second half. The client's CPU time is then not taken
# from the broker, as when the broker runs on a machine of its own. On 2 CPUs
# that is CPU 0 for the broker and CPU 1 for the command. The command gets
# AMQPRETRY_CPU_LAYOUT, a sentence that names both sets, and the broker's
# earlier CPU set comes back when the command ends.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../deploy" && pwd)"
# shellcheck source=deploy/broker-common.sh
source "$deploy_dir/broker-common.sh"

if (( $# == 0 )); then
    echo "usage: deploy/with-broker.sh $0 CMD [ARG...]" >&2
    exit 2
fi

cpus="$(nproc)"
if (( cpus < 2 )); then
    echo "error: the separate-cores layout needs at least 2 CPUs, and this machine has $cpus;" \
        "run make bench BENCH_LAYOUTS=shared instead" >&2
    exit 2
fi

broker_pid="$(broker_vm_pid)"
if [[ -z "$broker_pid" ]]; then
    echo "error: no private RabbitMQ node runs on port $AMQPRETRY_BROKER_PORT; run this script through" \
        "deploy/with-broker.sh with AMQP_URL unset, so that it starts the node whose CPUs it sets" >&2
    exit 2
fi

# Prints "CPU N" for one CPU and "CPUs N-M" for a range.
cpu_set_name() {
    if (( $1 == $2 )); then echo "CPU $1"; else echo "CPUs $1-$2"; fi
}

half=$((cpus / 2))
broker_cpus="0-$((half - 1))"
client_cpus="$half-$((cpus - 1))"
previous_cpus="$(taskset -p -c "$broker_pid" | sed 's/.*: *//')"

# shellcheck disable=SC2317  # Runs from the EXIT trap.
restore() {
    taskset -a -p -c "$previous_cpus" "$broker_pid" >/dev/null 2>&1 || true
}
trap restore EXIT

taskset -a -p -c "$broker_cpus" "$broker_pid" >/dev/null
export AMQPRETRY_CPU_LAYOUT="the broker's Erlang VM on $(cpu_set_name 0 $((half - 1))), the benchmark on $(cpu_set_name "$half" $((cpus - 1))) (taskset)"
echo "separate-cores: $AMQPRETRY_CPU_LAYOUT" >&2
status=0
taskset -c "$client_cpus" "$@" || status=$?
exit "$status"
