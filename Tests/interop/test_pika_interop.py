"""Python (pika) producers and consumers against `amqp-retry worker`.

Every message below is built from docs/wire-format.md alone, so a failure here means that the
worker and the contract disagree. The tests start the worker as a subprocess, invoke its demo
services in each mode, read the callbacks and replies, and check one parked message.

Environment:
    AMQP_URL        the broker, such as amqp://guest:guest@127.0.0.1:5680/%2F (required)
    AMQPRETRY_BIN   the amqp-retry executable (default: .build/debug/amqp-retry)

Run from the repository root with Tests/interop/run.sh test_pika_interop, which uses Debian's
Python because that one has python3-pika.
"""

import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
import unittest
from datetime import datetime, timezone

import pika
import pika.exceptions

URL_VARIABLE = "AMQP_URL"
BINARY_VARIABLE = "AMQPRETRY_BIN"
DEFAULT_BINARY = ".build/debug/amqp-retry"

# The worker logs this message on standard error once every service queue has a consumer.
WORKER_STARTED_MESSAGE = "worker started"
WORKER_START_TIMEOUT = 30.0
# The worker drains running calls for up to 30 s after SIGTERM, so the wait is longer.
WORKER_STOP_TIMEOUT = 45.0

# Bounds of every wait for a message, in seconds.
CALLBACK_TIMEOUT = 30.0
REPLY_TIMEOUT = 10.0
PARKED_TIMEOUT = 15.0
# How long a consumer keeps listening after the expected callbacks came, to catch duplicates.
DUPLICATE_WINDOW = 2.0
# The largest number of messages one wait reads, so that a flooded queue cannot loop forever.
MAX_MESSAGES_PER_WAIT = 10_000

INTERVAL_MS = 300
CONTRACT_VERSION = 1
PARKING_QUEUE = "amqpretry.parked"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
CID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_cid():
    """Return a fresh CID: `K` and 27 Crockford base32 characters holding 127 random bits."""
    value = secrets.randbits(127)
    return "K" + "".join(CID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(27)))


def service_queue(service):
    return "amqpretry.service." + service


def delay_name(milliseconds):
    """Return the name of the delay exchange and of the delay queue for an interval."""
    return f"amqpretry.delay.{milliseconds}ms"


def utc_timestamp():
    """Return the current time as the contract writes it: ISO 8601, UTC, microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def file_tail(path, max_chars=4000):
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()[-max_chars:]


class SetupError(Exception):
    """A missing or unreachable component that stops the tests before they start."""


class WorkerProcess:
    """`amqp-retry worker` as a subprocess, with its output in files for failure messages."""

    def __init__(self, binary, url, folder):
        self.stdout_path = os.path.join(folder, "worker.stdout")
        self.stderr_path = os.path.join(folder, "worker.stderr")
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [binary, "worker", "--url", url],
                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            )

    def output(self):
        return (f"--- worker stderr (end) ---\n{file_tail(self.stderr_path)}\n"
                f"--- worker stdout (end) ---\n{file_tail(self.stdout_path)}")

    def wait_until_started(self):
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if WORKER_STARTED_MESSAGE in file_tail(self.stderr_path, max_chars=1_000_000):
                return
            if self.process.poll() is not None:
                raise SetupError(f"amqp-retry worker exited with status {self.process.returncode} "
                                 f"before it started\n{self.output()}")
            time.sleep(0.1)
        raise SetupError(f"amqp-retry worker did not log '{WORKER_STARTED_MESSAGE}' within "
                         f"{WORKER_START_TIMEOUT:.0f} s\n{self.output()}")

    def stop(self):
        """Send SIGTERM, wait for the drain, and return the exit status; kill it when it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"amqp-retry worker did not exit within {WORKER_STOP_TIMEOUT:.0f} s "
                                 f"of SIGTERM and was killed\n{self.output()}") from None


class Broker:
    """One pika connection and the contract's operations on it."""

    def __init__(self, url):
        parameters = pika.URLParameters(url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 5
        parameters.blocked_connection_timeout = 30
        try:
            self.connection = pika.BlockingConnection(parameters)
        except pika.exceptions.AMQPError as error:
            raise SetupError(f"connecting to RabbitMQ at {URL_VARIABLE} failed ({error!r}): run "
                             f"`make test`, which provides a broker, or set {URL_VARIABLE} to a "
                             "running one") from error

    def close(self):
        if self.connection.is_open:
            self.connection.close()

    def confirmed_channel(self):
        channel = self.connection.channel()
        channel.confirm_delivery()
        return channel

    def declare_service_queue(self, service):
        channel = self.connection.channel()
        channel.queue_declare(service_queue(service), durable=True)
        channel.close()

    def declare_delay(self, milliseconds):
        """Declare the delay exchange, queue and binding of an interval, as the contract lists them.

        pika sends a Python int below 2**31 as a signed 32-bit integer (`I`), not as the `l` the
        workers use, which the contract allows because RabbitMQ compares integer arguments by value.
        """
        name = delay_name(milliseconds)
        channel = self.connection.channel()
        channel.exchange_declare(name, exchange_type="fanout", durable=True)
        channel.queue_declare(name, durable=True, arguments={
            "x-message-ttl": milliseconds,
            "x-dead-letter-exchange": "",
        })
        channel.queue_bind(name, name, routing_key="")
        channel.close()

    def delete_queue(self, name):
        channel = self.connection.channel()
        channel.queue_delete(name)
        channel.close()

    def publish(self, exchange, routing_key, body, properties):
        """Publish with `mandatory` set and wait for the publisher confirm."""
        channel = self.confirmed_channel()
        channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        channel.close()

    def call(self, service, body, headers, cid, attempt, timeout=REPLY_TIMEOUT,
             content_type="application/json"):
        """Send one request of a blocking call through direct reply-to and return the reply.

        Returns (properties, body), or None when no reply for this CID and attempt came in time.
        """
        channel = self.confirmed_channel()
        replies = []

        def on_reply(_channel, _method, properties, reply_body):
            reply_headers = properties.headers or {}
            if (properties.correlation_id == cid
                    and reply_headers.get("amqpretry-attempt") == attempt):
                replies.append((properties, reply_body))

        # Direct reply-to needs the no-ack consumer on the publishing channel first.
        channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
        properties = pika.BasicProperties(
            correlation_id=cid, content_type=content_type, delivery_mode=1,
            reply_to=DIRECT_REPLY_TO, expiration=str(int(timeout * 1000)), headers=headers,
        )
        channel.basic_publish("", service_queue(service), body, properties, mandatory=True)

        deadline = time.monotonic() + timeout
        while not replies and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.1)
        channel.close()
        return replies[0] if replies else None

    def collect(self, queue, expected_cids, timeout=CALLBACK_TIMEOUT):
        """Consume a queue until a message for every expected CID came, then DUPLICATE_WINDOW more.

        Acknowledges every message and returns {correlation_id: [(properties, body), ...]}.
        """
        received = {}
        channel = self.connection.channel()
        deadline = time.monotonic() + timeout
        settle_deadline = None
        count = 0
        for method, properties, body in channel.consume(queue, inactivity_timeout=0.1):
            if method is not None:
                received.setdefault(properties.correlation_id, []).append((properties, body))
                channel.basic_ack(method.delivery_tag)
                count += 1
            now = time.monotonic()
            if settle_deadline is None and set(expected_cids) <= received.keys():
                settle_deadline = now + DUPLICATE_WINDOW
            if (settle_deadline is not None and now >= settle_deadline) or now >= deadline:
                break
            if count >= MAX_MESSAGES_PER_WAIT:
                break
        channel.cancel()
        channel.close()
        return received

    def take_parked(self, cid, timeout=PARKED_TIMEOUT):
        """Remove the parked message of `cid` and return (properties, body), or None.

        Parked messages of other CIDs are held unacknowledged while searching and then requeued.
        """
        channel = self.connection.channel()
        channel.queue_declare(PARKING_QUEUE, durable=True)
        held_tags = []
        found = None
        deadline = time.monotonic() + timeout
        try:
            while found is None and time.monotonic() < deadline and len(held_tags) < MAX_MESSAGES_PER_WAIT:
                method, properties, body = channel.basic_get(PARKING_QUEUE, auto_ack=False)
                if method is None:
                    time.sleep(0.1)
                elif properties.correlation_id == cid:
                    channel.basic_ack(method.delivery_tag)
                    found = (properties, body)
                else:
                    held_tags.append(method.delivery_tag)
        finally:
            for tag in held_tags:
                channel.basic_nack(tag, requeue=True)
            channel.close()
        return found


def background_invocation(cid, attempt, repeats, callback, context=None, orig_cid=None,
                          req_ts=None, last_error=None):
    """Return the properties of an `async` invocation with an interval of INTERVAL_MS."""
    headers = {
        "amqpretry-version": CONTRACT_VERSION,
        "amqpretry-mode": "async",
        "amqpretry-attempt": attempt,
        "amqpretry-repeats": repeats,
        "amqpretry-interval-ms": INTERVAL_MS,
        "amqpretry-callback": callback,
    }
    optional = {
        "amqpretry-context": None if context is None else json.dumps(context),
        "amqpretry-orig-cid": orig_cid,
        "amqpretry-req-ts": req_ts,
        "amqpretry-last-error": last_error,
    }
    headers.update({name: value for name, value in optional.items() if value is not None})
    return pika.BasicProperties(correlation_id=cid, content_type="application/json",
                                delivery_mode=2, message_id=new_cid(), headers=headers)


class PikaInteropTest(unittest.TestCase):
    """Invokes the worker's demo services from Python in every mode of the contract."""

    worker = None
    broker = None

    @classmethod
    def setUpClass(cls):
        url = os.environ.get(URL_VARIABLE, "")
        if not url:
            raise SetupError(f"{URL_VARIABLE} is not set, so the interop tests have no RabbitMQ "
                             f"broker: run `make test`, which provides one, or set {URL_VARIABLE}, "
                             "for example AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F")
        binary = os.path.abspath(os.environ.get(BINARY_VARIABLE, DEFAULT_BINARY))
        if not os.access(binary, os.X_OK):
            raise SetupError(f"amqp-retry executable {binary} not found: run `swift build` or set "
                             f"{BINARY_VARIABLE} to its path")

        cls.run_id = secrets.token_hex(4)
        cls.callback_queues = []
        cls.broker = Broker(url)
        cls.folder = tempfile.TemporaryDirectory(prefix="amqpretry-interop-")
        try:
            cls.worker = WorkerProcess(binary, url, cls.folder.name)
            cls.worker.wait_until_started()
        except BaseException:
            cls.clean_up()
            raise

    @classmethod
    def tearDownClass(cls):
        status = cls.clean_up()
        if status != 0:
            raise AssertionError(f"amqp-retry worker exited with status {status} after SIGTERM, "
                                 f"expected 0\n{cls.worker.output()}")

    @classmethod
    def clean_up(cls):
        """Stop the worker, delete the callback queues and close; return the worker's exit status."""
        # The worker stops first so that it cannot declare the callback queues again.
        try:
            return cls.worker.stop() if cls.worker is not None else 0
        finally:
            for queue in cls.callback_queues:
                cls.broker.delete_queue(queue)
            cls.broker.close()
            cls.folder.cleanup()

    def callback_service(self, case):
        """Declare the durable queue of a callback service that no worker hosts, and return its name."""
        service = f"interop.{self.run_id}.{case}.callbacks"
        self.broker.declare_service_queue(service)
        self.callback_queues.append(service_queue(service))
        return service

    def assert_one_callback_each(self, received, cids):
        self.assertEqual(set(received), set(cids), "callbacks arrived for other CIDs than the invoked ones")
        for cid in cids:
            self.assertEqual(len(received[cid]), 1, f"CID {cid} got {len(received[cid])} callbacks, expected 1")

    def assert_callback_message(self, properties, cid, callback, target):
        headers = properties.headers or {}
        self.assertEqual(properties.correlation_id, cid)
        self.assertEqual(properties.content_type, "application/json")
        self.assertEqual(properties.delivery_mode, 2)
        self.assertEqual(headers.get("amqpretry-version"), CONTRACT_VERSION)
        self.assertEqual(headers.get("amqpretry-mode"), "callback")
        self.assertEqual(headers.get("amqpretry-target"), callback)
        self.assertEqual(headers.get("amqpretry-source"), target)

    def assert_success_body(self, body, cid, target, attempts, repeats):
        self.assertIs(body["ok"], True)
        self.assertEqual(body["target"], target)
        self.assertEqual(body["call_cid"], cid)
        self.assertEqual(body["attempts"], attempts)
        self.assertEqual(body["retry_repeats"], repeats)
        self.assertAlmostEqual(body["retry_seconds"], INTERVAL_MS / 1000)
        self.assertIsNone(body["error"])
        self.assertEqual(body["response_encoding"], "utf-8")
        self.assertEqual(body["response_content_type"], "application/json")
        self.assertEqual(json.loads(body["response"]), {"attempt": attempts})
        datetime.fromisoformat(body["resp_ts_utc"])

    def test_async_async_flaky_and_fail(self):
        callback = self.callback_service("async")
        flaky_cid, fail_cid, orig_cid = new_cid(), new_cid(), new_cid()
        context = {"run": self.run_id, "case": "flaky", "nested": {"list": [1, "two", None]}}
        req_ts = utc_timestamp()

        self.broker.publish("", service_queue("demo.flaky"), json.dumps({"fail_times": 2}).encode(),
                            background_invocation(flaky_cid, 1, 3, callback, context=context,
                                                  orig_cid=orig_cid, req_ts=req_ts))
        # Without amqpretry-orig-cid, amqpretry-req-ts and a context, to check their defaults.
        self.broker.publish("", service_queue("demo.fail"), b"{}",
                            background_invocation(fail_cid, 1, 2, callback))
        received = self.broker.collect(service_queue(callback), [flaky_cid, fail_cid])

        self.assert_one_callback_each(received, [flaky_cid, fail_cid])
        flaky_properties, flaky_body = received[flaky_cid][0]
        self.assert_callback_message(flaky_properties, flaky_cid, callback, "demo.flaky")
        self.assertEqual(flaky_properties.headers.get("amqpretry-orig-cid"), orig_cid)
        self.assertEqual(flaky_properties.headers.get("amqpretry-req-ts"), req_ts)
        self.assertEqual(json.loads(flaky_properties.headers.get("amqpretry-context")), context)
        flaky = json.loads(flaky_body)
        self.assert_success_body(flaky, flaky_cid, "demo.flaky", attempts=3, repeats=3)
        self.assertEqual(flaky["source"], "")
        self.assertEqual(flaky["orig_cid"], orig_cid)
        self.assertEqual(flaky["req_ts_utc"], req_ts)
        self.assertEqual(flaky["context"], context)

        fail_properties, fail_body = received[fail_cid][0]
        self.assert_callback_message(fail_properties, fail_cid, callback, "demo.fail")
        fail = json.loads(fail_body)
        self.assertIs(fail["ok"], False)
        self.assertEqual(fail["target"], "demo.fail")
        self.assertEqual(fail["call_cid"], fail_cid)
        self.assertEqual(fail["attempts"], 3)
        self.assertEqual(fail["retry_repeats"], 2)
        self.assertIsInstance(fail["error"], str)
        self.assertIn("attempt 3", fail["error"])
        self.assertIsNone(fail["response"])
        self.assertIsNone(fail["response_encoding"])
        self.assertIsNone(fail["response_content_type"])
        self.assertIsNone(fail["context"])
        self.assertEqual(fail["orig_cid"], "")
        self.assertEqual(fail["req_ts_utc"], "")

    def test_sync_async_fallback_flaky(self):
        callback = self.callback_service("fallback")
        cid = new_cid()
        context = {"run": self.run_id, "case": "fallback"}
        request = json.dumps({"fail_times": 2}).encode()
        sync_headers = {
            "amqpretry-version": CONTRACT_VERSION,
            "amqpretry-mode": "sync",
            "amqpretry-attempt": 1,
        }

        reply = self.broker.call("demo.flaky", request, sync_headers, cid, attempt=1)
        self.assertIsNotNone(reply, f"no reply from demo.flaky within {REPLY_TIMEOUT:.0f} s")
        reply_properties, _ = reply
        self.assertEqual(reply_properties.headers.get("amqpretry-status"), "error")
        error = reply_properties.headers.get("amqpretry-error")
        self.assertIsInstance(error, str)
        self.assertIn("attempt 1", error)

        # The first call failed: attempt 2 goes to the delay exchange and runs one interval later.
        self.broker.declare_delay(INTERVAL_MS)
        self.broker.publish(delay_name(INTERVAL_MS), service_queue("demo.flaky"), request,
                            background_invocation(cid, 2, 3, callback, context=context, last_error=error))
        received = self.broker.collect(service_queue(callback), [cid])

        self.assert_one_callback_each(received, [cid])
        properties, body = received[cid][0]
        self.assert_callback_message(properties, cid, callback, "demo.flaky")
        outcome = json.loads(body)
        self.assert_success_body(outcome, cid, "demo.flaky", attempts=3, repeats=3)
        self.assertEqual(outcome["context"], context)

    def test_sync_sync_echo(self):
        cases = [
            ("application/json", json.dumps({"hello": "interop", "run": self.run_id}).encode()),
            ("application/octet-stream", b"\x00\xff interop " + self.run_id.encode()),
        ]
        for content_type, request in cases:
            with self.subTest(content_type=content_type):
                cid = new_cid()
                headers = {
                    "amqpretry-version": CONTRACT_VERSION,
                    "amqpretry-mode": "sync",
                    "amqpretry-target": "demo.echo",
                    "amqpretry-attempt": 1,
                }
                reply = self.broker.call("demo.echo", request, headers, cid, attempt=1,
                                         content_type=content_type)

                self.assertIsNotNone(reply, f"no reply from demo.echo within {REPLY_TIMEOUT:.0f} s")
                properties, body = reply
                self.assertEqual(properties.correlation_id, cid)
                self.assertEqual(properties.headers.get("amqpretry-version"), CONTRACT_VERSION)
                self.assertEqual(properties.headers.get("amqpretry-attempt"), 1)
                self.assertEqual(properties.headers.get("amqpretry-status"), "ok")
                self.assertNotIn("amqpretry-error", properties.headers)
                self.assertEqual(properties.content_type, content_type)
                self.assertEqual(body, request)

    def test_unsupported_version_parked(self):
        cid = new_cid()
        headers = {
            "amqpretry-version": CONTRACT_VERSION + 1,
            "amqpretry-mode": "async",
            "amqpretry-attempt": 1,
            "amqpretry-repeats": 1,
            "amqpretry-interval-ms": INTERVAL_MS,
            "x-interop-run": self.run_id,
        }
        body = json.dumps({"run": self.run_id}).encode()
        properties = pika.BasicProperties(correlation_id=cid, content_type="application/json",
                                          delivery_mode=2, headers=headers)
        self.broker.publish("", service_queue("demo.echo"), body, properties)

        parked = self.broker.take_parked(cid)

        self.assertIsNotNone(parked, f"message {cid} did not reach {PARKING_QUEUE} within {PARKED_TIMEOUT:.0f} s")
        parked_properties, parked_body = parked
        parked_headers = parked_properties.headers or {}
        self.assertTrue(parked_headers.get("amqpretry-parked-reason", "").startswith("unsupported-version"),
                        f"amqpretry-parked-reason is {parked_headers.get('amqpretry-parked-reason')!r}")
        self.assertEqual(parked_headers.get("amqpretry-parked-queue"), service_queue("demo.echo"))
        self.assertIsInstance(parked_headers.get("amqpretry-parked-at"), str)
        datetime.fromisoformat(parked_headers["amqpretry-parked-at"])
        self.assertEqual(parked_headers.get("amqpretry-version"), CONTRACT_VERSION + 1)
        self.assertEqual(parked_headers.get("x-interop-run"), self.run_id)
        self.assertEqual(parked_properties.content_type, "application/json")
        self.assertEqual(parked_body, body)


if __name__ == "__main__":
    unittest.main()
