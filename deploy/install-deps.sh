#!/usr/bin/env bash
# Install the Debian 12 packages that AMQPRetry needs to build and test:
#   librabbitmq-dev  rabbitmq-c, the AMQP 0-9-1 client library that the
#                    CRabbitMQ target links
#   rabbitmq-server  the broker behind deploy/rabbitmq-start.sh
#   python3-pika     a second AMQP client for checking the broker by hand
#
# Idempotent: when every package is installed it changes nothing and needs no
# root. Otherwise it must run as root and runs apt-get update and install.
#
# The rabbitmq-server package starts the system node (rabbit@HOST on port
# 5672) through invoke-rc.d unless /usr/sbin/policy-rc.d denies it, as it does
# in containers. The deploy scripts never start or stop that node because
# they run a private node on other ports.
set -euo pipefail

packages=(librabbitmq-dev rabbitmq-server python3-pika)

# Succeed when dpkg reports the package as fully installed. A removed package
# whose config files remain is known to dpkg but not installed.
is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'
}

missing=()
for package in "${packages[@]}"; do
    is_installed "$package" || missing+=("$package")
done

if (( ${#missing[@]} == 0 )); then
    echo "Dependencies are installed: ${packages[*]}"
    exit 0
fi

if (( EUID != 0 )); then
    echo "error: missing packages: ${missing[*]}; run $0 as root (for example with sudo) to install them" >&2
    exit 1
fi

echo "Installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait up to 5 minutes for another apt or dpkg process to release its lock.
apt_options=(-o DPkg::Lock::Timeout=300)
apt-get "${apt_options[@]}" update
apt-get "${apt_options[@]}" install -y --no-install-recommends "${missing[@]}"

for package in "${missing[@]}"; do
    is_installed "$package" || { echo "error: $package is still not installed after apt-get install" >&2; exit 1; }
done
echo "Installed: ${missing[*]}"
