# Build, test and run AMQPRetry.
#
# test, demo and worker need a RabbitMQ broker. Unless AMQP_URL is set, they
# start a private node on 127.0.0.1:5680 (deploy/rabbitmq-start.sh) and stop
# it when they finish or fail; with AMQP_URL set they use that broker and
# start nothing. See deploy/with-broker.sh.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

CLI := .build/debug/amqp-retry

.PHONY: deps build test faults cluster-test demo worker broker-start broker-stop tsan bench clean

deps:
	deploy/install-deps.sh

build: deps
	swift build

# Building first keeps compile time out of the broker's lifetime. Tests run
# one at a time (no --parallel) because the integration tests share a broker.
# After swift test, Tests/interop/run.sh runs the Python (pika) interop tests
# against .build/debug/amqp-retry and checks deploy/rabbitmq/definitions.json.
# That check imports with rabbitmqctl, so with AMQP_URL set it also needs
# AMQPRETRY_RABBITMQCTL.
test: deps
	swift build --build-tests
	deploy/with-broker.sh bash -c "swift test --disable-swift-testing --filter '^(AMQPRetryTests|AMQPRetryIntegrationTests)\\.' && Tests/interop/run.sh"

# The fault tests (Tests/AMQPRetryFaultTests) kill workers and restart, stall
# and alarm their broker, so they always start a private node of their own on
# port 5760, with the TLS listeners the security tests need, and ignore
# AMQP_URL. docs/reliability.md describes them.
faults: deps
	swift build --build-tests
	env -u AMQP_URL AMQPRETRY_BROKER_PORT=5760 AMQPRETRY_BROKER_TLS=1 deploy/with-broker.sh \
		swift test --disable-swift-testing --filter AMQPRetryFaultTests

# The cluster tests (Tests/AMQPRetryClusterTests) stop and restart a node of
# a local three-node cluster with quorum queues on AMQP ports 5700, 5720 and
# 5740, which deploy/with-cluster.sh starts and stops around them.
# ClusterScalingBenchmark measures and checks nothing, so only
# Benchmarks/cluster-scaling.sh runs it.
cluster-test: deps
	swift build --build-tests
	deploy/with-cluster.sh swift test --skip-build --disable-swift-testing \
		--filter '^AMQPRetryClusterTests\.' --skip ClusterScalingBenchmark

demo: build
	deploy/with-broker.sh $(CLI) demo

# Runs in the foreground until Ctrl-C, then stops the broker it started.
worker: build
	deploy/with-broker.sh $(CLI) worker

# The unit and integration tests under ThreadSanitizer, against their own
# private node (port TSAN_BROKER_PORT, or the broker in AMQP_URL). The
# sanitized build goes to .build/tsan so that it does not replace the regular
# one, and any ThreadSanitizer report fails the run.
TSAN_BROKER_PORT ?= 5780
TSAN_SCRATCH := .build/tsan

tsan: deps
	swift build --build-tests --sanitize=thread --scratch-path $(TSAN_SCRATCH)
	AMQPRETRY_BROKER_PORT=$(TSAN_BROKER_PORT) deploy/with-broker.sh \
		swift test --skip-build --sanitize=thread --scratch-path $(TSAN_SCRATCH) --disable-swift-testing \
		--filter '^(AMQPRetryTests|AMQPRetryIntegrationTests)\.'

# Every workload through AMQPRetry's public API and through the librabbitmq
# baseline in Benchmarks/baseline, printed and written to docs/benchmarks.md.
# Both are built in release mode before the broker starts. BENCH_ROUNDS sets
# the rounds of each workload; both layouts took 6.4 minutes on 2 cores with
# 3 rounds, the release build included. BENCH_LAYOUTS lists the CPU layouts,
# each run against a fresh node and written to a block of its own: shared
# (broker and benchmark on every CPU) and separate-cores (the broker on the
# first half of the CPUs, the benchmark on the rest; Benchmarks/separate-cores.sh).
BENCH_ROUNDS ?= 5
BENCH_LAYOUTS ?= shared separate-cores
BENCH_DIR := .build/bench

bench: deps
	swift build -c release
	mkdir -p $(BENCH_DIR)
	cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o $(BENCH_DIR)/amqp-retry-baseline \
		Benchmarks/baseline/*.c -lrabbitmq -lpthread -lm
	for layout in $(BENCH_LAYOUTS); do \
		case "$$layout" in \
			shared) wrapper=(); block=results ;; \
			separate-cores) wrapper=(Benchmarks/separate-cores.sh); block=results-separate-cores ;; \
			*) echo "error: unknown layout '$$layout' in BENCH_LAYOUTS; use shared, separate-cores or both" >&2; exit 2 ;; \
		esac; \
		deploy/with-broker.sh "$${wrapper[@]}" .build/release/amqp-retry-bench \
			--baseline $(BENCH_DIR)/amqp-retry-baseline --rounds $(BENCH_ROUNDS) --output docs/benchmarks.md \
			--results-block "$$block" --command "make bench BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_LAYOUTS=$$layout"; \
	done

broker-start:
	@if [[ -n "$${AMQP_URL:-}" ]]; then \
		echo "AMQP_URL is set; using that broker and starting none."; \
	else \
		deploy/rabbitmq-start.sh; \
	fi

broker-stop:
	@if [[ -n "$${AMQP_URL:-}" ]]; then \
		echo "AMQP_URL is set; no private broker to stop."; \
	else \
		deploy/rabbitmq-stop.sh; \
	fi

clean:
	rm -rf .build
