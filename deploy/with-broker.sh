#!/usr/bin/env bash
# Run a command against a RabbitMQ broker and exit with the command's status:
#   deploy/with-broker.sh CMD [ARG...]
#
# When AMQP_URL is set, the command runs against that broker and nothing is
# started. Otherwise the private node is started (deploy/rabbitmq-start.sh),
# the command runs with AMQP_URL set to its URL and AMQPRETRY_RABBITMQCTL set
# to deploy/rabbitmqctl.sh, and the node is stopped when the command exits,
# fails or is interrupted. The node is left running if it was already running
# before, for example after `make broker-start`.
#
# With AMQPRETRY_BROKER_TLS=1 the node also has TLS listeners (see
# broker-common.sh), and the command gets AMQPRETRY_TLS_URL (amqps:// to
# localhost, trusting the generated CA), AMQPRETRY_TLS_WRONG_HOST_URL (the same
# on 127.0.0.2, a name the certificate lacks), AMQPRETRY_TLS_CA (the CA that
# signed the server certificate) and AMQPRETRY_TLS_WRONG_CA (an unrelated CA).
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if (( $# == 0 )); then
    echo "usage: $0 CMD [ARG...]" >&2
    exit 2
fi

if [[ -n "${AMQP_URL:-}" ]]; then
    echo "AMQP_URL is set; using that broker and starting none." >&2
    exec "$@"
fi

# shellcheck source=deploy/broker-common.sh
source "$deploy_dir/broker-common.sh"

started_broker=0

# Stop the node if this script started it, and exit with the command's
# status, or with 1 when only the stop failed.
# shellcheck disable=SC2317  # Runs from the EXIT trap.
on_exit() {
    local status=$?
    trap - EXIT INT TERM HUP
    if (( started_broker )); then
        if ! "$deploy_dir/rabbitmq-stop.sh"; then
            echo "error: failed to stop the private RabbitMQ node; run $deploy_dir/rabbitmq-stop.sh to retry" >&2
            (( status != 0 )) || status=1
        fi
    fi
    exit "$status"
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "$(broker_vm_pid)" ]] || ! broker_port_accepts "$AMQPRETRY_BROKER_PORT"; then
    started_broker=1
fi
AMQP_URL="$("$deploy_dir/rabbitmq-start.sh")"
export AMQP_URL
export AMQPRETRY_RABBITMQCTL="$deploy_dir/rabbitmqctl.sh"
if broker_tls_enabled; then
    export AMQPRETRY_TLS_URL="$BROKER_TLS_URL"
    export AMQPRETRY_TLS_WRONG_HOST_URL="$BROKER_TLS_WRONG_HOST_URL"
    export AMQPRETRY_TLS_CA="$BROKER_TLS_CA_FILE"
    export AMQPRETRY_TLS_WRONG_CA="$BROKER_TLS_WRONG_CA_FILE"
fi

echo "Running $* against the private RabbitMQ node on $BROKER_HOST:$AMQPRETRY_BROKER_PORT" >&2
status=0
"$@" || status=$?
exit "$status"
