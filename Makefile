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

.PHONY: deps build test demo worker broker-start broker-stop clean

deps:
	deploy/install-deps.sh

build: deps
	swift build

# Building first keeps compile time out of the broker's lifetime. Tests run
# one at a time (no --parallel) because the integration tests share a broker.
test: deps
	swift build --build-tests
	deploy/with-broker.sh swift test --disable-swift-testing

demo: build
	deploy/with-broker.sh $(CLI) demo

# Runs in the foreground until Ctrl-C, then stops the broker it started.
worker: build
	deploy/with-broker.sh $(CLI) worker

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
