#!/usr/bin/env bash
# Stop every node of the local RabbitMQ cluster and its shared epmd, and make
# sure that no process of the cluster remains. Succeeds when nothing runs.
#
# Environment: the same cluster settings as cluster-start.sh (see
# cluster-common.sh).
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/cluster-common.sh
source "$deploy_dir/cluster-common.sh"

# Stop every node at once with rabbitmq-stop.sh, which waits a bounded time
# for its node and then sends SIGTERM and SIGKILL to that node's processes
# only. Returns 1 when any stop failed.
stop_nodes() {
    local index log pids=() status=0
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        log="$AMQPRETRY_CLUSTER_DIR/stop-$(cluster_node_port "$index").log"
        if [[ -d "$AMQPRETRY_CLUSTER_DIR" ]]; then
            cluster_node_run "$index" "$deploy_dir/rabbitmq-stop.sh" >"$log" 2>&1 &
        else
            cluster_node_run "$index" "$deploy_dir/rabbitmq-stop.sh" >&2 &
        fi
        pids+=("$!")
    done
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        if ! wait "${pids[index - 1]}"; then
            status=1
            log="$AMQPRETRY_CLUSTER_DIR/stop-$(cluster_node_port "$index").log"
            cluster_log "---- $log ----"
            cat "$log" >&2 2>/dev/null || true
        fi
    done
    return "$status"
}

# Wait up to $1 seconds until no process of the cluster is left.
wait_for_exit() {
    local seconds="$1" attempt
    for ((attempt = 1; attempt <= seconds * 5; attempt++)); do
        [[ -z "$(cluster_all_pids)" ]] && return 0
        sleep 0.2
    done
    return 1
}

# Send the signal $1 to every process of the cluster that is left.
signal_cluster_processes() {
    local signal="$1" pids
    pids="$(cluster_all_pids | sort -u)"
    if [[ -n "$pids" ]]; then
        cluster_log "Sending SIG$signal to processes of the cluster: ${pids//$'\n'/ }"
        # shellcheck disable=SC2086
        kill -s "$signal" $pids 2>/dev/null || true
    fi
}

cluster_log "Stopping the RabbitMQ cluster on AMQP ports ${CLUSTER_PORTS[*]}..."
status=0
stop_nodes || status=$?

# epmd refuses -kill while a node is still registered, so it goes last.
if cluster_epmd_running; then
    timeout 10 epmd -port "$CLUSTER_EPMD_PORT" -kill >/dev/null 2>&1 || true
fi
if ! wait_for_exit 10; then
    signal_cluster_processes TERM
    if ! wait_for_exit 10; then
        signal_cluster_processes KILL
        if ! wait_for_exit 5; then
            pids="$(cluster_all_pids | sort -u)"
            cluster_fail "processes of the cluster still run after SIGKILL: ${pids//$'\n'/ }"
        fi
    fi
fi

if (( status != 0 )); then
    cluster_fail "stopping a node failed (see above), but no process of the cluster is left"
fi
cluster_log "The RabbitMQ cluster is stopped."
