#!/usr/bin/env bash
# Run rabbitmqctl against one node of the local RabbitMQ cluster:
#   deploy/cluster-ctl.sh NODE_INDEX [RABBITMQCTL_ARG...]
# NODE_INDEX is 1 for the first node (AMQP port 5700 by default), 2 for the
# second and so on, for example
#   deploy/cluster-ctl.sh 2 stop_app
#   deploy/cluster-ctl.sh 1 cluster_status
# Uses the cluster settings of cluster-start.sh (see cluster-common.sh).
# Exits with rabbitmqctl's status.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/cluster-common.sh
source "$deploy_dir/cluster-common.sh"

if (( $# == 0 )); then
    echo "usage: $0 NODE_INDEX [RABBITMQCTL_ARG...]" >&2
    exit 2
fi
cluster_check_index "$1"
index="$1"
shift

cluster_node_run "$index" "$deploy_dir/rabbitmqctl.sh" "$@"
