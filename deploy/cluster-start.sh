#!/usr/bin/env bash
# Start a local RabbitMQ cluster on 127.0.0.1 in the background: three nodes
# by default (AMQP ports 5700, 5720 and 5740), sharing one epmd (port 4400)
# and one Erlang cookie. Node 1 starts the cluster and the other nodes join
# it. On success the last line on stdout is the comma-separated list of the
# nodes' AMQP URLs, node 1 first; progress messages go to stderr.
#
# Environment: see cluster-common.sh for the ports and the state folder, and
# AMQPRETRY_BROKER_START_TIMEOUT (seconds to wait for each node, default 90).
#
# If the whole cluster is already running, the script prints the URLs and
# exits 0. Otherwise it stops what is left of the cluster and starts every
# node from empty data folders.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/cluster-common.sh
source "$deploy_dir/cluster-common.sh"

# Seconds to wait until node 1 lists every node as running after the joins.
readonly cluster_wait_seconds=60

for tool in epmd setsid timeout grep; do
    command -v "$tool" >/dev/null || cluster_fail "$tool not found in PATH; install Debian's rabbitmq-server package (make deps)"
done

# Print the user that runs the nodes: rabbitmq when started as root (like
# Debian's service), the current user otherwise. broker-common.sh does the same.
node_user() {
    if (( EUID == 0 )); then
        echo rabbitmq
    else
        id -un
    fi
}

# Stop what a failed start left behind and exit 1.
fail_start() {
    cluster_log "error: $*"
    cluster_log "Stopping what is left of the cluster..."
    "$deploy_dir/cluster-stop.sh" >&2 || true
    exit 1
}

# Create the cluster's state folder with the shared HOME and Erlang cookie,
# owned by the nodes' user. Exits with an error instead of changing an
# existing folder that this script did not create.
prepare_cluster_dir() {
    local user
    user="$(node_user)"

    if [[ -L "$AMQPRETRY_CLUSTER_DIR" ]]; then
        cluster_fail "$AMQPRETRY_CLUSTER_DIR is a symbolic link; set AMQPRETRY_CLUSTER_DIR to a real folder"
    fi
    if [[ -e "$AMQPRETRY_CLUSTER_DIR" && ! -e "$CLUSTER_DIR_MARKER" ]] \
        && [[ -n "$(ls -A "$AMQPRETRY_CLUSTER_DIR" 2>/dev/null)" ]]; then
        cluster_fail "$AMQPRETRY_CLUSTER_DIR exists and was not created by $0; set AMQPRETRY_CLUSTER_DIR to a new or empty folder"
    fi

    mkdir -p "$AMQPRETRY_CLUSTER_DIR" "$CLUSTER_HOME_DIR"
    chmod 0755 "$AMQPRETRY_CLUSTER_DIR"
    touch "$CLUSTER_DIR_MARKER"
    # Erlang reads the cookie only when its owner alone can read it.
    if [[ ! -s "$CLUSTER_COOKIE_FILE" ]]; then
        rm -f "$CLUSTER_COOKIE_FILE"
        (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$CLUSTER_COOKIE_FILE")
    fi
    chmod 0400 "$CLUSTER_COOKIE_FILE"
    chmod 0700 "$CLUSTER_HOME_DIR"
    chown "$user:" "$CLUSTER_HOME_DIR" "$CLUSTER_COOKIE_FILE"
}

# Start the shared epmd on 127.0.0.1:$CLUSTER_EPMD_PORT, tagged so that
# cluster-stop.sh can find it. rabbitmq-start.sh finds it running and starts
# no epmd of its own.
start_epmd() {
    local attempt prefix=()
    if cluster_epmd_running; then
        cluster_log "epmd already runs on port $CLUSTER_EPMD_PORT."
        return 0
    fi
    # shellcheck disable=SC2016  # $0 expands in the inner bash.
    if timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$CLUSTER_EPMD_PORT" 2>/dev/null; then
        cluster_fail "port $CLUSTER_EPMD_PORT is in use by a program other than epmd; stop it or set AMQPRETRY_CLUSTER_EPMD_PORT to a free port"
    fi

    if (( EUID == 0 )); then
        prefix=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --)
    fi
    "${prefix[@]}" env -i -C "$AMQPRETRY_CLUSTER_DIR" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$CLUSTER_EPMD_TAG" epmd -port "$CLUSTER_EPMD_PORT" -address 127.0.0.1 -daemon \
        </dev/null >/dev/null 2>&1

    for ((attempt = 1; attempt <= 50; attempt++)); do
        cluster_epmd_running && return 0
        sleep 0.2
    done
    fail_start "epmd did not start on port $CLUSTER_EPMD_PORT within 10 s"
}

# Start every node at once with rabbitmq-start.sh and wait for all of them.
# The output of each start goes to start-PORT.log in the cluster's state folder.
start_nodes() {
    local index log pids=() failed=()
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        log="$AMQPRETRY_CLUSTER_DIR/start-$(cluster_node_port "$index").log"
        cluster_node_run "$index" "$deploy_dir/rabbitmq-start.sh" >"$log" 2>&1 &
        pids+=("$!")
    done
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        if ! wait "${pids[index - 1]}"; then
            failed+=("$index")
        fi
    done
    for index in "${failed[@]}"; do
        log="$AMQPRETRY_CLUSTER_DIR/start-$(cluster_node_port "$index").log"
        cluster_log "---- $log ----"
        cat "$log" >&2
    done
    if (( ${#failed[@]} > 0 )); then
        fail_start "node(s) ${failed[*]} of the cluster did not start"
    fi
}

# Make node $1 a member of node 1's cluster. join_cluster resets the node,
# which is empty anyway, and needs its RabbitMQ application stopped.
join_node() {
    local index="$1" first
    first="$(cluster_node_name 1)"
    cluster_log "Joining $(cluster_node_name "$index") to the cluster of $first..."
    cluster_ctl "$index" 60 stop_app >&2 || fail_start "rabbitmqctl stop_app failed on node $index"
    cluster_ctl "$index" 60 join_cluster "$first" >&2 || fail_start "rabbitmqctl join_cluster $first failed on node $index"
    cluster_ctl "$index" 120 start_app >&2 || fail_start "rabbitmqctl start_app failed on node $index"
}

# Wait until node 1 lists every node as running.
wait_for_members() {
    local deadline=$((SECONDS + cluster_wait_seconds)) count=""
    while (( SECONDS < deadline )); do
        count="$(cluster_running_node_count 1)"
        [[ "$count" == "$CLUSTER_SIZE" ]] && return 0
        sleep 1
    done
    fail_start "node 1 lists ${count:-no} running nodes after $cluster_wait_seconds s, expected $CLUSTER_SIZE"
}

if cluster_is_running; then
    cluster_log "The RabbitMQ cluster of $CLUSTER_SIZE nodes is already running."
    cluster_url_list
    exit 0
fi

if [[ -n "$(cluster_all_pids)" ]]; then
    cluster_log "Stopping what is left of an earlier cluster..."
    "$deploy_dir/cluster-stop.sh" >&2
fi

prepare_cluster_dir
start_epmd
cluster_log "Starting $CLUSTER_SIZE RabbitMQ nodes on AMQP ports ${CLUSTER_PORTS[*]} (state folder $AMQPRETRY_CLUSTER_DIR)..."
start_nodes
for (( index = 2; index <= CLUSTER_SIZE; index++ )); do
    join_node "$index"
done
wait_for_members

cluster_log "The RabbitMQ cluster of $CLUSTER_SIZE nodes is running; node logs: $AMQPRETRY_CLUSTER_DIR/amqpretry-*/log"
cluster_url_list
