#!/usr/bin/env bash
# Start the private RabbitMQ node (amqpretry-PORT@localhost) on 127.0.0.1 in the
# background and wait until it accepts AMQP connections. On success the last
# line on stdout is the node's AMQP URL; progress messages go to stderr.
#
# Environment:
#   AMQPRETRY_BROKER_PORT           AMQP port (default 5680)
#   AMQPRETRY_BROKER_DIR            state folder (default /tmp/amqpretry-rabbitmq-PORT)
#   AMQPRETRY_BROKER_START_TIMEOUT  seconds to wait for the node (default 90)
#   AMQPRETRY_BROKER_TLS            1 to add TLS listeners on the AMQP port + 1
#                                   with generated certificates (default 0;
#                                   see the TLS section of broker-common.sh)
#
# If the node is already running, the script prints the URL and exits 0.
# Otherwise it starts from empty data and log folders.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/broker-common.sh
source "$deploy_dir/broker-common.sh"

start_timeout="${AMQPRETRY_BROKER_START_TIMEOUT:-90}"
[[ "$start_timeout" =~ ^[1-9][0-9]*$ ]] \
    || broker_fail "AMQPRETRY_BROKER_START_TIMEOUT=$start_timeout is invalid; use a whole number of seconds"

broker_require_tools

# Write the node's config, plugin list and env file into the state folder.
write_config_files() {
    cat >"$BROKER_CONFIG_FILE" <<EOF
# Config of the private RabbitMQ node $BROKER_NODE_NAME, written by
# deploy/rabbitmq-start.sh on each start.
listeners.tcp.default = $BROKER_HOST:$AMQPRETRY_BROKER_PORT
loopback_users.guest = true
log.console = false
log.file = $BROKER_LOG_FILE
log.file.level = info
# 50MB is RabbitMQ 3.10's default. A larger limit would block publishers on
# build machines with little free disk.
disk_free_limit.absolute = 50MB
EOF
    if broker_tls_enabled; then
        broker_tls_config >>"$BROKER_CONFIG_FILE"
    fi

    # Plugins to enable, as an Erlang list of atoms, for example
    # [rabbitmq_management,rabbitmq_consistent_hash_exchange].
    echo '[].' >"$BROKER_PLUGINS_FILE"

    cat >"$BROKER_ENV_FILE" <<EOF
# Empty on purpose: pointing RABBITMQ_CONF_ENV_FILE here keeps the system
# node's /etc/rabbitmq/rabbitmq-env.conf away from $BROKER_NODE_NAME.
EOF

    chmod 0644 "$BROKER_CONFIG_FILE" "$BROKER_PLUGINS_FILE" "$BROKER_ENV_FILE"
}

# Create the state folder with empty data and log folders, owned by the
# node's user. Exits with an error instead of changing an existing folder that
# this script did not create.
prepare_state_dir() {
    local user
    user="$(broker_user)"

    if [[ -L "$AMQPRETRY_BROKER_DIR" ]]; then
        broker_fail "$AMQPRETRY_BROKER_DIR is a symbolic link; set AMQPRETRY_BROKER_DIR to a real folder"
    fi
    if [[ -e "$AMQPRETRY_BROKER_DIR" && ! -e "$BROKER_DIR_MARKER" ]] \
        && [[ -n "$(ls -A "$AMQPRETRY_BROKER_DIR" 2>/dev/null)" ]]; then
        broker_fail "$AMQPRETRY_BROKER_DIR exists and was not created by $0; set AMQPRETRY_BROKER_DIR to a new or empty folder"
    fi

    mkdir -p "$AMQPRETRY_BROKER_DIR"
    touch "$BROKER_DIR_MARKER"
    rm -rf "$BROKER_DATA_DIR" "$BROKER_LOG_DIR" "$BROKER_PID_FILE"
    mkdir -p "$BROKER_DATA_DIR" "$BROKER_LOG_DIR"
    write_config_files
    if broker_tls_enabled; then
        broker_tls_generate "$user"
    else
        rm -rf "$BROKER_TLS_DIR"
    fi

    # A private cookie, so CLI calls can only reach this node and the
    # system node's /var/lib/rabbitmq/.erlang.cookie stays untouched.
    if [[ ! -s "$AMQPRETRY_BROKER_DIR/.erlang.cookie" ]]; then
        (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$AMQPRETRY_BROKER_DIR/.erlang.cookie")
    fi
    chmod 0400 "$AMQPRETRY_BROKER_DIR/.erlang.cookie"

    chown "$user:" "$AMQPRETRY_BROKER_DIR" "$AMQPRETRY_BROKER_DIR/.erlang.cookie"
    chown -R "$user:" "$BROKER_DATA_DIR" "$BROKER_LOG_DIR"
}

# Start the private epmd on 127.0.0.1:$BROKER_EPMD_PORT unless it runs.
start_epmd() {
    local attempt
    if broker_epmd_running; then
        return 0
    fi
    if broker_port_accepts "$BROKER_EPMD_PORT"; then
        broker_fail "port $BROKER_EPMD_PORT is in use by a program other than epmd; stop it and retry"
    fi

    "${broker_run_prefix[@]}" "$BROKER_PROCESS_TAG" \
        epmd -port "$BROKER_EPMD_PORT" -address "$BROKER_HOST" -daemon \
        </dev/null >/dev/null 2>&1

    for ((attempt = 1; attempt <= 50; attempt++)); do
        broker_epmd_running && return 0
        sleep 0.2
    done
    broker_fail "epmd did not start on port $BROKER_EPMD_PORT within 10 s"
}

# Stop what a failed start left behind, print the logs and exit 1.
fail_start() {
    broker_log "error: $*"
    broker_print_log_tail
    broker_log "Stopping what is left of $BROKER_NODE_NAME..."
    "$deploy_dir/rabbitmq-stop.sh" >&2 || true
    exit 1
}

# Wait until the node's app is running and the AMQP port accepts connections.
# The node writes its pid file early in the boot and opens the AMQP listener
# near the end of it.
wait_for_node() {
    local launcher_pid="$1" deadline=$((SECONDS + start_timeout)) remaining attempt
    for ((attempt = 1; attempt <= start_timeout; attempt++)); do
        if ! kill -0 "$launcher_pid" 2>/dev/null; then
            fail_start "$BROKER_NODE_NAME exited during startup"
        fi
        if [[ -n "$(broker_vm_pid)" ]] && broker_port_accepts "$AMQPRETRY_BROKER_PORT"; then
            remaining=$((deadline - SECONDS))
            (( remaining >= 5 )) || remaining=5
            if timeout $((remaining + 5)) "${broker_ctl_command[@]}" --timeout "$remaining" await_startup \
                </dev/null >/dev/null 2>&1; then
                return 0
            fi
            fail_start "rabbitmqctl await_startup failed for $BROKER_NODE_NAME"
        fi
        (( SECONDS < deadline )) || break
        sleep 1
    done
    fail_start "$BROKER_NODE_NAME did not start within $start_timeout s"
}

vm_pid="$(broker_vm_pid)"
if [[ -n "$vm_pid" ]] && broker_port_accepts "$AMQPRETRY_BROKER_PORT"; then
    if broker_tls_enabled && ! broker_port_accepts "$BROKER_TLS_PORT"; then
        broker_fail "$BROKER_NODE_NAME is already running without a TLS listener on port $BROKER_TLS_PORT; stop it with $deploy_dir/rabbitmq-stop.sh and start it again with AMQPRETRY_BROKER_TLS=1"
    fi
    broker_log "RabbitMQ node $BROKER_NODE_NAME is already running (pid $vm_pid)."
    echo "$BROKER_URL"
    exit 0
fi

# Processes from a crashed or half-finished start are stopped first.
if [[ -n "$(broker_node_pids)" ]]; then
    broker_log "Stopping leftover processes of $BROKER_NODE_NAME..."
    "$deploy_dir/rabbitmq-stop.sh" >&2
fi

ports=("$AMQPRETRY_BROKER_PORT" "$BROKER_DIST_PORT")
if broker_tls_enabled; then
    ports+=("$BROKER_TLS_PORT")
fi
for port in "${ports[@]}"; do
    if broker_port_accepts "$port"; then
        broker_fail "port $port on $BROKER_HOST is in use by another program; stop it or set AMQPRETRY_BROKER_PORT to a free port"
    fi
done

prepare_state_dir
start_epmd

broker_log "Starting RabbitMQ node $BROKER_NODE_NAME on $BROKER_HOST:$AMQPRETRY_BROKER_PORT (state folder $AMQPRETRY_BROKER_DIR)..."
# setsid puts the node in its own session, so Ctrl-C in the terminal that
# started it reaches the client under test but not the broker.
setsid "${broker_run_prefix[@]}" "$BROKER_PROCESS_TAG" "$BROKER_RABBITMQ_BIN_DIR/rabbitmq-server" \
    </dev/null >>"$BROKER_CONSOLE_LOG" 2>&1 &
launcher_pid=$!

wait_for_node "$launcher_pid"
if broker_tls_enabled && ! broker_port_accepts "$BROKER_TLS_PORT"; then
    fail_start "$BROKER_NODE_NAME runs but its TLS listener on port $BROKER_TLS_PORT does not accept connections"
fi

broker_log "RabbitMQ node $BROKER_NODE_NAME is running (pid $(broker_vm_pid)); log: $BROKER_LOG_FILE"
echo "$BROKER_URL"
