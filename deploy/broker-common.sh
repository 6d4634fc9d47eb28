# shellcheck shell=bash
# shellcheck disable=SC2034  # The scripts that source this file use the variables.
# Settings and helpers shared by the scripts that manage the private RabbitMQ
# node. Source this file from bash; it only defines variables and functions.
#
# The private node shares nothing with a system RabbitMQ node (rabbit@HOST on
# AMQP port 5672, distribution port 25672, epmd port 4369): it has its own node
# name, ports, epmd, Erlang cookie, config, data and log folders. All of them
# derive from the AMQP port, so private nodes on AMQP ports at least 11 apart
# (each node's CLI tools use 11 ports) can run side by side.

AMQPRETRY_BROKER_PORT="${AMQPRETRY_BROKER_PORT:-5680}"
if ! [[ "$AMQPRETRY_BROKER_PORT" =~ ^[0-9]+$ ]] \
    || (( AMQPRETRY_BROKER_PORT < 2400 || AMQPRETRY_BROKER_PORT > 45535 )); then
    echo "error: AMQPRETRY_BROKER_PORT=$AMQPRETRY_BROKER_PORT is invalid; use a port from 2400 to 45535 (the epmd port is the AMQP port - 1300 and the distribution port the AMQP port + 20000)" >&2
    exit 2
fi

AMQPRETRY_BROKER_DIR="${AMQPRETRY_BROKER_DIR:-/tmp/amqpretry-rabbitmq-$AMQPRETRY_BROKER_PORT}"
AMQPRETRY_BROKER_DIR="${AMQPRETRY_BROKER_DIR%/}"
if [[ "$AMQPRETRY_BROKER_DIR" != /?* ]]; then
    echo "error: AMQPRETRY_BROKER_DIR=$AMQPRETRY_BROKER_DIR is invalid; use an absolute path other than /" >&2
    exit 2
fi

BROKER_NODE_NAME="amqpretry-$AMQPRETRY_BROKER_PORT@localhost"
BROKER_HOST="127.0.0.1"
# The offsets of a system node: distribution port = AMQP port + 20000 (25672),
# and rabbitmq-env of RabbitMQ 3.10 gives CLI tools the ports 35672-35682,
# which is distribution port + 10000 to + 10010.
BROKER_DIST_PORT=$((AMQPRETRY_BROKER_PORT + 20000))
BROKER_CLI_DIST_PORT_MIN=$((BROKER_DIST_PORT + 10000))
BROKER_CLI_DIST_PORT_MAX=$((BROKER_CLI_DIST_PORT_MIN + 10))
# 4380 for the default AMQP port 5680.
BROKER_EPMD_PORT=$((AMQPRETRY_BROKER_PORT - 1300))

# ---- Cluster overrides --------------------------------------------------------
# The nodes of a local cluster (deploy/cluster-start.sh) must share one epmd
# and one Erlang cookie to reach each other. Unset, these variables keep the
# single node's own epmd and cookie:
#   AMQPRETRY_BROKER_EPMD_PORT  epmd port (default: the AMQP port - 1300)
#   AMQPRETRY_BROKER_HOME       HOME of the node and its CLI tools, the folder
#                               whose .erlang.cookie they use (default: the
#                               state folder)
if [[ -n "${AMQPRETRY_BROKER_EPMD_PORT:-}" ]]; then
    if ! [[ "$AMQPRETRY_BROKER_EPMD_PORT" =~ ^[0-9]+$ ]] \
        || (( AMQPRETRY_BROKER_EPMD_PORT < 1024 || AMQPRETRY_BROKER_EPMD_PORT > 65535 )); then
        echo "error: AMQPRETRY_BROKER_EPMD_PORT=$AMQPRETRY_BROKER_EPMD_PORT is invalid; use a port from 1024 to 65535" >&2
        exit 2
    fi
    BROKER_EPMD_PORT="$AMQPRETRY_BROKER_EPMD_PORT"
fi
BROKER_HOME_DIR="${AMQPRETRY_BROKER_HOME:-$AMQPRETRY_BROKER_DIR}"
BROKER_HOME_DIR="${BROKER_HOME_DIR%/}"
if [[ "$BROKER_HOME_DIR" != /?* ]]; then
    echo "error: AMQPRETRY_BROKER_HOME=$AMQPRETRY_BROKER_HOME is invalid; use an absolute path other than /" >&2
    exit 2
fi
# ---- End of cluster overrides -------------------------------------------------

BROKER_URL="amqp://guest:guest@$BROKER_HOST:$AMQPRETRY_BROKER_PORT/%2F"

BROKER_CONFIG_FILE="$AMQPRETRY_BROKER_DIR/rabbitmq.conf"
BROKER_ENV_FILE="$AMQPRETRY_BROKER_DIR/rabbitmq-env.conf"
BROKER_PLUGINS_FILE="$AMQPRETRY_BROKER_DIR/enabled_plugins"
BROKER_DATA_DIR="$AMQPRETRY_BROKER_DIR/mnesia"
BROKER_LOG_DIR="$AMQPRETRY_BROKER_DIR/log"
BROKER_LOG_FILE="$BROKER_LOG_DIR/rabbitmq.log"
# stdout and stderr of the rabbitmq-server process: early boot errors land here.
BROKER_CONSOLE_LOG="$BROKER_LOG_DIR/console.log"
# Written by the node itself; contains the OS pid of the Erlang VM.
BROKER_PID_FILE="$AMQPRETRY_BROKER_DIR/rabbitmq.pid"
# Marks a folder that rabbitmq-start.sh created. The start script changes an
# existing state folder only when it is empty or has this marker.
BROKER_DIR_MARKER="$AMQPRETRY_BROKER_DIR/.amqpretry-broker-dir"

# Every process of the node (its shell wrapper, the Erlang VM and its helper
# processes, its epmd) is started with this variable in its environment, so
# the stop script can find exactly those processes in /proc.
BROKER_PROCESS_TAG="AMQPRETRY_PRIVATE_NODE_DIR=$AMQPRETRY_BROKER_DIR"

# Debian's rabbitmq-server package installs the real scripts here. Its
# /usr/sbin wrappers switch to the rabbitmq user but also cd to
# /var/lib/rabbitmq and use the system node's Erlang cookie, so the private
# node runs these scripts directly.
BROKER_RABBITMQ_BIN_DIR="/usr/lib/rabbitmq/bin"

# Print the error message and exit with status 1.
broker_fail() {
    echo "error: $*" >&2
    exit 1
}

# Print a progress message on stderr, keeping stdout for results.
broker_log() {
    echo "$*" >&2
}

# Exit with an error unless RabbitMQ, epmd and util-linux tools are installed.
broker_require_tools() {
    local tool
    for tool in "$BROKER_RABBITMQ_BIN_DIR/rabbitmq-server" "$BROKER_RABBITMQ_BIN_DIR/rabbitmqctl"; do
        [[ -x "$tool" ]] || broker_fail "$tool not found; install Debian's rabbitmq-server package (make deps)"
    done
    for tool in epmd setsid timeout; do
        command -v "$tool" >/dev/null || broker_fail "$tool not found in PATH; install Debian's rabbitmq-server package (make deps)"
    done
    if (( EUID == 0 )); then
        command -v setpriv >/dev/null || broker_fail "setpriv not found in PATH; install util-linux"
        id rabbitmq >/dev/null 2>&1 || broker_fail "user rabbitmq not found; install Debian's rabbitmq-server package (make deps)"
    fi
}

# Print the user that runs the node: rabbitmq when started as root (like
# Debian's service), the current user otherwise.
broker_user() {
    if (( EUID == 0 )); then
        echo rabbitmq
    else
        id -un
    fi
}

# Command prefix that runs a program as the node's user, in the state folder,
# with a clean environment that points RabbitMQ and Erlang at the private node
# only. Variables of the caller (RABBITMQ_*, ERL_*, HOME) never reach
# RabbitMQ, and HOME is the state folder (or AMQPRETRY_BROKER_HOME), so the
# node and its CLI tools use the private Erlang cookie there. NAME=VALUE words
# may follow the prefix.
broker_run_prefix=()
if (( EUID == 0 )); then
    broker_run_prefix=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --)
fi
broker_run_prefix+=(
    env -i -C "$AMQPRETRY_BROKER_DIR"
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8
    LC_ALL=C.UTF-8
    HOME="$BROKER_HOME_DIR"
    ERL_EPMD_PORT="$BROKER_EPMD_PORT"
    ERL_EPMD_ADDRESS="$BROKER_HOST"
    RABBITMQ_NODENAME="$BROKER_NODE_NAME"
    RABBITMQ_USE_LONGNAME=false
    RABBITMQ_DIST_PORT="$BROKER_DIST_PORT"
    RABBITMQ_CONF_ENV_FILE="$BROKER_ENV_FILE"
    RABBITMQ_CONFIG_FILE="$BROKER_CONFIG_FILE"
    RABBITMQ_ADVANCED_CONFIG_FILE="$AMQPRETRY_BROKER_DIR/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_PLUGINS_FILE"
    RABBITMQ_MNESIA_BASE="$BROKER_DATA_DIR"
    RABBITMQ_LOG_BASE="$BROKER_LOG_DIR"
    RABBITMQ_PID_FILE="$BROKER_PID_FILE"
    ERL_CRASH_DUMP="$BROKER_LOG_DIR/erl_crash.dump"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    # -start_epmd false: a CLI call fails instead of starting an epmd.
    RABBITMQ_CTL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
    RABBITMQ_CTL_DIST_PORT_MIN="$BROKER_CLI_DIST_PORT_MIN"
    RABBITMQ_CTL_DIST_PORT_MAX="$BROKER_CLI_DIST_PORT_MAX"
)

# Command that runs rabbitmqctl against the private node; arguments follow.
broker_ctl_command=("${broker_run_prefix[@]}" "$BROKER_RABBITMQ_BIN_DIR/rabbitmqctl" -n "$BROKER_NODE_NAME")

# Succeed when something accepts TCP connections on 127.0.0.1:PORT.
broker_port_accepts() {
    local port="$1"
    # shellcheck disable=SC2016  # $0 and $1 expand in the inner bash.
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$BROKER_HOST" "$port" 2>/dev/null
}

# Succeed when the private epmd responds on its port.
broker_epmd_running() {
    timeout 5 epmd -port "$BROKER_EPMD_PORT" -names >/dev/null 2>&1
}

# Print the pids of all processes started for this node (found by the tag in
# their environment), one per line. Reading the environment of processes of
# other users needs root, which is also what started them in that case.
broker_node_pids() {
    local environ_file pid
    # grep exits 1 when no process matches, which is not an error here.
    { grep -lzxF -- "$BROKER_PROCESS_TAG" /proc/[0-9]*/environ 2>/dev/null || true; } \
        | while read -r environ_file; do
            pid="${environ_file#/proc/}"
            pid="${pid%/environ}"
            echo "$pid"
        done
}

# Print the pid from the node's pid file when that process is alive and is one
# of this node's processes; print nothing otherwise.
broker_vm_pid() {
    local pid
    [[ -f "$BROKER_PID_FILE" ]] || return 0
    pid="$(tr -dc '0-9' <"$BROKER_PID_FILE")"
    [[ -n "$pid" ]] || return 0
    if grep -qzxF -- "$BROKER_PROCESS_TAG" "/proc/$pid/environ" 2>/dev/null; then
        echo "$pid"
    fi
}

# Print the last lines of the node's logs, for failure reports.
broker_print_log_tail() {
    local log_file
    for log_file in "$BROKER_CONSOLE_LOG" "$BROKER_LOG_FILE"; do
        if [[ -s "$log_file" ]]; then
            echo "---- last 40 lines of $log_file ----" >&2
            tail -n 40 "$log_file" >&2
        fi
    done
}

# ---- TLS listener (AMQPRETRY_BROKER_TLS=1) ----------------------------------
# With AMQPRETRY_BROKER_TLS=1 the start script generates a test CA, a server
# certificate for localhost (SAN DNS:localhost and IP:127.0.0.1) signed by it,
# and a second, unrelated CA, and opens TLS listeners on 127.0.0.1 and
# 127.0.0.2 at the AMQP port + 1. The 127.0.0.2 listener serves the same
# certificate, so a client that connects to it with host name verification
# must reject the name. The broker does not ask for client certificates.

AMQPRETRY_BROKER_TLS="${AMQPRETRY_BROKER_TLS:-0}"
if [[ "$AMQPRETRY_BROKER_TLS" != 0 && "$AMQPRETRY_BROKER_TLS" != 1 ]]; then
    echo "error: AMQPRETRY_BROKER_TLS=$AMQPRETRY_BROKER_TLS is invalid; use 1 to open a TLS listener or 0 for none" >&2
    exit 2
fi

BROKER_TLS_PORT=$((AMQPRETRY_BROKER_PORT + 1))
# A loopback address that is not in the server certificate.
BROKER_TLS_ALIAS_HOST="127.0.0.2"
BROKER_TLS_DIR="$AMQPRETRY_BROKER_DIR/tls"
BROKER_TLS_CA_FILE="$BROKER_TLS_DIR/ca.pem"
BROKER_TLS_WRONG_CA_FILE="$BROKER_TLS_DIR/wrong-ca.pem"
BROKER_TLS_CERT_FILE="$BROKER_TLS_DIR/server.pem"
BROKER_TLS_KEY_FILE="$BROKER_TLS_DIR/server.key"
BROKER_TLS_URL="amqps://guest:guest@localhost:$BROKER_TLS_PORT/%2F?cacertfile=$BROKER_TLS_CA_FILE"
BROKER_TLS_WRONG_HOST_URL="amqps://guest:guest@$BROKER_TLS_ALIAS_HOST:$BROKER_TLS_PORT/%2F?cacertfile=$BROKER_TLS_CA_FILE"

# Succeed when AMQPRETRY_BROKER_TLS=1.
broker_tls_enabled() {
    [[ "$AMQPRETRY_BROKER_TLS" == 1 ]]
}

# Print the rabbitmq.conf lines of the TLS listeners.
broker_tls_config() {
    cat <<EOT

# TLS listeners (AMQPRETRY_BROKER_TLS=1), with the certificates that
# deploy/rabbitmq-start.sh generated. Clients are not asked for certificates.
listeners.ssl.default = $BROKER_HOST:$BROKER_TLS_PORT
listeners.ssl.alias = $BROKER_TLS_ALIAS_HOST:$BROKER_TLS_PORT
ssl_options.cacertfile = $BROKER_TLS_CA_FILE
ssl_options.certfile = $BROKER_TLS_CERT_FILE
ssl_options.keyfile = $BROKER_TLS_KEY_FILE
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOT
}

# Generate the CA, the server certificate and key and the wrong CA in
# $BROKER_TLS_DIR, replacing earlier ones, with the server key readable only
# by the node's user ($1). The CA keys are deleted once the certificates are
# signed, so nothing else can be signed by these CAs.
broker_tls_generate() {
    local user="$1" work
    command -v openssl >/dev/null || broker_fail "openssl not found in PATH; install Debian's openssl package"
    # The URLs put the CA path unencoded into their query.
    [[ "$BROKER_TLS_DIR" =~ ^[A-Za-z0-9._/-]+$ ]] \
        || broker_fail "AMQPRETRY_BROKER_DIR=$AMQPRETRY_BROKER_DIR contains characters that need percent-encoding in a URL; use only letters, digits, '.', '_', '-' and '/' with AMQPRETRY_BROKER_TLS=1"

    rm -rf "$BROKER_TLS_DIR"
    mkdir -p "$BROKER_TLS_DIR/work"
    work="$BROKER_TLS_DIR/work"
    cat >"$work/extensions.cnf" <<EOT
[req]
distinguished_name = subject

[subject]

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOT

    if ! {
        broker_tls_make_ca "$work" ca "AMQPRetry test CA $AMQPRETRY_BROKER_PORT" \
            && broker_tls_make_ca "$work" wrong-ca "AMQPRetry wrong test CA $AMQPRETRY_BROKER_PORT" \
            && openssl req -new -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout "$work/server.key" -out "$work/server.csr" \
            && openssl x509 -req -in "$work/server.csr" -days 30 -sha256 -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
                -CA "$work/ca.pem" -CAkey "$work/ca.key" \
                -extfile "$work/extensions.cnf" -extensions server -out "$work/server.pem"
    } >"$work/openssl.log" 2>&1; then
        cat "$work/openssl.log" >&2
        broker_fail "openssl failed to generate the TLS certificates in $BROKER_TLS_DIR"
    fi

    mv "$work/ca.pem" "$BROKER_TLS_CA_FILE"
    mv "$work/wrong-ca.pem" "$BROKER_TLS_WRONG_CA_FILE"
    mv "$work/server.pem" "$BROKER_TLS_CERT_FILE"
    mv "$work/server.key" "$BROKER_TLS_KEY_FILE"
    rm -rf "$work"

    chmod 0755 "$BROKER_TLS_DIR"
    chmod 0644 "$BROKER_TLS_CA_FILE" "$BROKER_TLS_WRONG_CA_FILE" "$BROKER_TLS_CERT_FILE"
    chmod 0600 "$BROKER_TLS_KEY_FILE"
    chown "$user:" "$BROKER_TLS_DIR" "$BROKER_TLS_CA_FILE" "$BROKER_TLS_WRONG_CA_FILE" \
        "$BROKER_TLS_CERT_FILE" "$BROKER_TLS_KEY_FILE"
}

# Write a self-signed CA certificate $1/$2.pem and its key $1/$2.key with the
# common name $3, valid for 30 days.
broker_tls_make_ca() {
    local work="$1" name="$2" common_name="$3"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=$common_name" \
        -config "$work/extensions.cnf" -extensions ca \
        -keyout "$work/$name.key" -out "$work/$name.pem"
}
