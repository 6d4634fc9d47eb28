#!/usr/bin/env bash
# Stop the private RabbitMQ node (amqpretry-PORT@localhost) and its epmd, and make
# sure that no process of the node remains. Succeeds when nothing runs.
#
# Environment: AMQPRETRY_BROKER_PORT and AMQPRETRY_BROKER_DIR, as given to
# rabbitmq-start.sh.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/broker-common.sh
source "$deploy_dir/broker-common.sh"

broker_require_tools

# Wait up to $1 seconds until no process of the node is left. The pids to
# ignore (epmd, while the node itself stops) follow as arguments.
wait_for_exit() {
    local seconds="$1" attempt pid remaining
    shift
    for ((attempt = 1; attempt <= seconds * 5; attempt++)); do
        remaining=0
        for pid in $(broker_node_pids); do
            if [[ " $* " != *" $pid "* ]]; then
                remaining=1
                break
            fi
        done
        (( remaining == 0 )) && return 0
        sleep 0.2
    done
    return 1
}

# Send the signal $1 to every process of the node.
signal_node_processes() {
    local signal="$1" pids
    pids="$(broker_node_pids)"
    if [[ -n "$pids" ]]; then
        broker_log "Sending SIG$signal to processes of $BROKER_NODE_NAME: ${pids//$'\n'/ }"
        # shellcheck disable=SC2086
        kill -s "$signal" $pids 2>/dev/null || true
    fi
}

# Print the pid of the private epmd, which must outlive the node.
epmd_pids() {
    local pid
    for pid in $(broker_node_pids); do
        if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == epmd ]]; then
            echo "$pid"
        fi
    done
}

vm_pid="$(broker_vm_pid)"
if [[ -n "$vm_pid" ]]; then
    broker_log "Stopping RabbitMQ node $BROKER_NODE_NAME (pid $vm_pid)..."
    # rabbitmqctl stop returns once the pid from the pid file has exited.
    if ! timeout 40 "${broker_ctl_command[@]}" --timeout 30 stop --idempotent "$BROKER_PID_FILE" \
        </dev/null >&2; then
        broker_log "warning: rabbitmqctl stop failed for $BROKER_NODE_NAME; stopping its processes with signals"
    fi
fi

# Give the node's shell wrapper and Erlang helper processes a moment to exit
# after the VM, then fall back to SIGTERM and SIGKILL for this node only.
# shellcheck disable=SC2046
if ! wait_for_exit 10 $(epmd_pids); then
    signal_node_processes TERM
    # shellcheck disable=SC2046
    if ! wait_for_exit 20 $(epmd_pids); then
        signal_node_processes KILL
    fi
fi

# epmd refuses -kill while a node is still registered, so it goes last.
if broker_epmd_running; then
    timeout 10 epmd -port "$BROKER_EPMD_PORT" -kill >/dev/null 2>&1 || true
fi
if ! wait_for_exit 5; then
    signal_node_processes KILL
    if ! wait_for_exit 5; then
        pids="$(broker_node_pids)"
        broker_fail "processes of $BROKER_NODE_NAME still run after SIGKILL: ${pids//$'\n'/ }"
    fi
fi

rm -f "$BROKER_PID_FILE"
broker_log "RabbitMQ node $BROKER_NODE_NAME is stopped."
