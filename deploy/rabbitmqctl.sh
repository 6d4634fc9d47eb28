#!/usr/bin/env bash
# Run rabbitmqctl against the private RabbitMQ node, for example
#   deploy/rabbitmqctl.sh list_queues name messages
# Uses the same AMQPRETRY_BROKER_PORT and AMQPRETRY_BROKER_DIR as
# rabbitmq-start.sh. Exits with rabbitmqctl's status.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/broker-common.sh
source "$deploy_dir/broker-common.sh"

broker_require_tools
[[ -d "$AMQPRETRY_BROKER_DIR" ]] \
    || broker_fail "$AMQPRETRY_BROKER_DIR not found; start the private node with deploy/rabbitmq-start.sh"

exec "${broker_ctl_command[@]}" "$@"
