#!/usr/bin/env bash
# Run a command against the local RabbitMQ cluster and exit with the
# command's status:
#   deploy/with-cluster.sh CMD [ARG...]
#
# The script starts the cluster (cluster-start.sh) and runs the command with
#   AMQP_URL               the nodes' URLs, comma-separated, node 1 first,
#                          with ?queue_type=quorum on the first URL
#   AMQPRETRY_CLUSTER_CTL  deploy/cluster-ctl.sh, which runs rabbitmqctl
#                          against one node: cluster-ctl.sh NODE_INDEX ARG...
# and stops the cluster when the command exits, fails or is interrupted. The
# cluster is left running if it was already running before.
#
# When AMQP_URL and AMQPRETRY_CLUSTER_CTL are both set, the command runs
# against that cluster and nothing is started. AMQP_URL alone names a single
# broker, which the cluster tests cannot stop nodes of, so it is replaced.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if (( $# == 0 )); then
    echo "usage: $0 CMD [ARG...]" >&2
    exit 2
fi

if [[ -n "${AMQP_URL:-}" && -n "${AMQPRETRY_CLUSTER_CTL:-}" ]]; then
    echo "AMQP_URL and AMQPRETRY_CLUSTER_CTL are set; using that cluster and starting none." >&2
    exec "$@"
fi
if [[ -n "${AMQP_URL:-}" ]]; then
    echo "AMQP_URL is set without AMQPRETRY_CLUSTER_CTL; ignoring it and using the local cluster." >&2
fi

# shellcheck source=deploy/cluster-common.sh
source "$deploy_dir/cluster-common.sh"

started_cluster=0

# Stop the cluster if this script started it, and exit with the command's
# status, or with 1 when only the stop failed.
# shellcheck disable=SC2317  # Runs from the EXIT trap.
on_exit() {
    local status=$?
    trap - EXIT INT TERM HUP
    if (( started_cluster )); then
        if ! "$deploy_dir/cluster-stop.sh"; then
            echo "error: failed to stop the local RabbitMQ cluster; run $deploy_dir/cluster-stop.sh to retry" >&2
            (( status != 0 )) || status=1
        fi
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if ! cluster_is_running; then
    started_cluster=1
fi
url_list="$("$deploy_dir/cluster-start.sh" | tail -n 1)"
first_url="${url_list%%,*}"
other_urls="${url_list#*,}"
AMQP_URL="$first_url?queue_type=quorum,$other_urls"
export AMQP_URL
export AMQPRETRY_CLUSTER_CTL="$deploy_dir/cluster-ctl.sh"

echo "Running $* against the local RabbitMQ cluster: $AMQP_URL" >&2
status=0
"$@" || status=$?
exit "$status"
