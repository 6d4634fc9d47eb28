#!/usr/bin/env bash
# Run the Python tests in Tests/interop with Debian's Python 3, which has python3-pika, from the
# repository root, and exit with unittest's status:
#   Tests/interop/run.sh                      every test_*.py in Tests/interop
#   Tests/interop/run.sh test_pika_interop    one module, class or method, as unittest names it
#
# The tests need AMQP_URL; test_definitions also needs AMQPRETRY_RABBITMQCTL. `make test` sets
# both. AMQPRETRY_BIN names the amqp-retry executable (default: .build/debug/amqp-retry).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

# Not `python3` from PATH: a pyenv or virtualenv Python usually lacks Debian's pika package.
python=/usr/bin/python3
if [[ ! -x "$python" ]]; then
    echo "error: $python not found; install Debian's python3 and python3-pika packages (make deps)" >&2
    exit 1
fi
if ! "$python" -c 'import pika' 2>/dev/null; then
    echo "error: $python cannot import pika; install Debian's python3-pika package (make deps)" >&2
    exit 1
fi

# Test names are resolved from Tests/interop, so the modules import without a package.
export PYTHONPATH="$repo_root/Tests/interop${PYTHONPATH:+:$PYTHONPATH}"
# Bytecode caches would land in the source tree.
export PYTHONDONTWRITEBYTECODE=1

if (( $# == 0 )); then
    exec "$python" -m unittest discover -v -s Tests/interop -p 'test_*.py'
fi
exec "$python" -m unittest -v "$@"
