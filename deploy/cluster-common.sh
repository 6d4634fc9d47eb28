# shellcheck shell=bash
# shellcheck disable=SC2034  # The scripts that source this file use the variables.
# Settings and helpers shared by the scripts that manage the local RabbitMQ
# cluster (cluster-start.sh, cluster-stop.sh, cluster-ctl.sh, with-cluster.sh).
# Source this file from bash. It defines variables and functions, and exits
# with status 2 when a setting below is invalid.
#
# Each node of the cluster is a private node of rabbitmq-start.sh with its own
# AMQP port, node name (amqpretry-PORT@localhost), distribution port (AMQP
# port + 20000) and state folder ($AMQPRETRY_CLUSTER_DIR/amqpretry-PORT). All
# nodes share one epmd and one Erlang cookie (broker-common.sh's cluster
# overrides), because Erlang nodes find each other through epmd and connect
# only when their cookies match.
#
# Environment:
#   AMQPRETRY_CLUSTER_DIR        state folder of the cluster (default
#                                /tmp/amqpretry-cluster)
#   AMQPRETRY_CLUSTER_PORTS      AMQP ports of the nodes, one per node,
#                                separated by spaces (default
#                                "5700 5720 5740"); node 1 is the first
#   AMQPRETRY_CLUSTER_EPMD_PORT  port of the shared epmd (default 4400)

cluster_deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

AMQPRETRY_CLUSTER_DIR="${AMQPRETRY_CLUSTER_DIR:-/tmp/amqpretry-cluster}"
AMQPRETRY_CLUSTER_DIR="${AMQPRETRY_CLUSTER_DIR%/}"
if [[ "$AMQPRETRY_CLUSTER_DIR" != /?* ]]; then
    echo "error: AMQPRETRY_CLUSTER_DIR=$AMQPRETRY_CLUSTER_DIR is invalid; use an absolute path other than /" >&2
    exit 2
fi

read -r -a CLUSTER_PORTS <<<"${AMQPRETRY_CLUSTER_PORTS:-5700 5720 5740}"
CLUSTER_SIZE="${#CLUSTER_PORTS[@]}"
if (( CLUSTER_SIZE < 2 )); then
    echo "error: AMQPRETRY_CLUSTER_PORTS=${AMQPRETRY_CLUSTER_PORTS:-} is invalid; give the AMQP ports of at least two nodes" >&2
    exit 2
fi
# Every node's CLI tools use 11 ports from its distribution port + 10000, so
# nodes closer than 11 AMQP ports apart would compete for CLI ports.
# broker-common.sh checks the range of each port.
for cluster_port in "${CLUSTER_PORTS[@]}"; do
    if ! [[ "$cluster_port" =~ ^[0-9]+$ ]]; then
        echo "error: AMQPRETRY_CLUSTER_PORTS=${AMQPRETRY_CLUSTER_PORTS:-} is invalid; '$cluster_port' is not a port number" >&2
        exit 2
    fi
done
for (( cluster_i = 0; cluster_i < CLUSTER_SIZE; cluster_i++ )); do
    for (( cluster_j = cluster_i + 1; cluster_j < CLUSTER_SIZE; cluster_j++ )); do
        cluster_gap=$(( CLUSTER_PORTS[cluster_i] - CLUSTER_PORTS[cluster_j] ))
        if (( ${cluster_gap#-} < 11 )); then
            echo "error: AMQPRETRY_CLUSTER_PORTS=${AMQPRETRY_CLUSTER_PORTS:-} is invalid; ports ${CLUSTER_PORTS[cluster_i]} and ${CLUSTER_PORTS[cluster_j]} are less than 11 apart" >&2
            exit 2
        fi
    done
done
unset cluster_port cluster_i cluster_j cluster_gap

CLUSTER_EPMD_PORT="${AMQPRETRY_CLUSTER_EPMD_PORT:-4400}"
if ! [[ "$CLUSTER_EPMD_PORT" =~ ^[0-9]+$ ]] || (( CLUSTER_EPMD_PORT < 1024 || CLUSTER_EPMD_PORT > 65535 )); then
    echo "error: AMQPRETRY_CLUSTER_EPMD_PORT=$CLUSTER_EPMD_PORT is invalid; use a port from 1024 to 65535" >&2
    exit 2
fi

# The HOME of every node and CLI call, which contains the shared Erlang cookie.
CLUSTER_HOME_DIR="$AMQPRETRY_CLUSTER_DIR/home"
CLUSTER_COOKIE_FILE="$CLUSTER_HOME_DIR/.erlang.cookie"
# Marks a folder that cluster-start.sh created. The start script changes an
# existing state folder only when it is empty or has this marker.
CLUSTER_DIR_MARKER="$AMQPRETRY_CLUSTER_DIR/.amqpretry-cluster-dir"
# The shared epmd carries this variable in its environment, so that the stop
# script finds exactly that process in /proc. The nodes carry their own tags
# (broker-common.sh's BROKER_PROCESS_TAG).
CLUSTER_EPMD_TAG="AMQPRETRY_PRIVATE_CLUSTER_DIR=$AMQPRETRY_CLUSTER_DIR"

# Print the error message and exit with status 1.
cluster_fail() {
    echo "error: $*" >&2
    exit 1
}

# Print a progress message on stderr, keeping stdout for results.
cluster_log() {
    echo "$*" >&2
}

# Exit with status 2 unless $1 is the number of a node, from 1 to the cluster size.
cluster_check_index() {
    local index="$1"
    if ! [[ "$index" =~ ^[0-9]+$ ]] || (( index < 1 || index > CLUSTER_SIZE )); then
        echo "error: node index '$index' is invalid; use a number from 1 to $CLUSTER_SIZE" >&2
        exit 2
    fi
}

# Print the AMQP port of node $1 (1-based).
cluster_node_port() {
    echo "${CLUSTER_PORTS[$1 - 1]}"
}

# Print the state folder of node $1.
cluster_node_dir() {
    echo "$AMQPRETRY_CLUSTER_DIR/amqpretry-$(cluster_node_port "$1")"
}

# Print the value of a variable of broker-common.sh ($2, such as
# BROKER_NODE_NAME) for node $1, so that both files agree on every name.
cluster_node_value() {
    # shellcheck disable=SC2016  # The inner bash expands the variables.
    cluster_node_run "$1" bash -c 'source "$0" && echo "${!1}"' "$cluster_deploy_dir/broker-common.sh" "$2"
}

# Print the Erlang node name of node $1, such as amqpretry-5700@localhost.
cluster_node_name() {
    cluster_node_value "$1" BROKER_NODE_NAME
}

# Print the AMQP URL of node $1.
cluster_node_url() {
    cluster_node_value "$1" BROKER_URL
}

# Print the URLs of every node, comma-separated, node 1 first.
cluster_url_list() {
    local index urls=()
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        urls+=("$(cluster_node_url "$index")")
    done
    local IFS=,
    echo "${urls[*]}"
}

# Run a command (usually one of the single-node scripts) for node $1, with the
# environment that makes broker-common.sh describe that node of the cluster.
cluster_node_run() {
    local index="$1"
    shift
    AMQPRETRY_BROKER_PORT="$(cluster_node_port "$index")" \
        AMQPRETRY_BROKER_DIR="$(cluster_node_dir "$index")" \
        AMQPRETRY_BROKER_EPMD_PORT="$CLUSTER_EPMD_PORT" \
        AMQPRETRY_BROKER_HOME="$CLUSTER_HOME_DIR" \
        AMQPRETRY_BROKER_TLS=0 \
        "$@"
}

# Run rabbitmqctl against node $1, with a time limit of $2 seconds. The
# rabbitmqctl arguments follow.
cluster_ctl() {
    local index="$1" seconds="$2"
    shift 2
    cluster_node_run "$index" timeout "$seconds" "$cluster_deploy_dir/rabbitmqctl.sh" "$@" </dev/null
}

# Succeed when node $1's Erlang VM runs and its AMQP port accepts connections.
cluster_node_running() {
    # shellcheck disable=SC2016  # The inner bash expands the variables.
    cluster_node_run "$1" bash -c '
        source "$0"
        [[ -n "$(broker_vm_pid)" ]] && broker_port_accepts "$AMQPRETRY_BROKER_PORT"
    ' "$cluster_deploy_dir/broker-common.sh"
}

# Print the number of running nodes that node $1 reports in its cluster
# status, or nothing when it does not answer.
cluster_running_node_count() {
    local status
    status="$(cluster_ctl "$1" 30 --quiet cluster_status --formatter json 2>/dev/null)" || return 0
    # The JSON contains "running_nodes":["a@localhost","b@localhost"].
    grep -o '"running_nodes":\[[^]]*\]' <<<"$status" | grep -o '@' | wc -l
}

# Succeed when every node runs and node 1 reports all of them as running
# members of its cluster.
cluster_is_running() {
    local index
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        cluster_node_running "$index" || return 1
    done
    [[ "$(cluster_running_node_count 1)" == "$CLUSTER_SIZE" ]]
}

# Print the pids of the processes whose environment contains the tag $1, one
# per line. Reading the environment of another user's process needs root,
# which is also what started them in that case.
cluster_tagged_pids() {
    local tag="$1" environ_file pid
    { grep -lzxF -- "$tag" /proc/[0-9]*/environ 2>/dev/null || true; } \
        | while read -r environ_file; do
            pid="${environ_file#/proc/}"
            echo "${pid%/environ}"
        done
}

# Print the pids of the shared epmd and of every process of every node.
cluster_all_pids() {
    local index
    cluster_tagged_pids "$CLUSTER_EPMD_TAG"
    for (( index = 1; index <= CLUSTER_SIZE; index++ )); do
        cluster_tagged_pids "$(cluster_node_value "$index" BROKER_PROCESS_TAG)"
    done
}

# Succeed when the shared epmd responds on its port.
cluster_epmd_running() {
    timeout 5 epmd -port "$CLUSTER_EPMD_PORT" -names >/dev/null 2>&1
}
