"""Checks that deploy/rabbitmq/definitions.json declares exactly what AMQPRetry declares.

The file is imported with `rabbitmqctl import_definitions` into a fresh virtual host, so objects
that already exist in the broker cannot hide a wrong definition: an import leaves an existing
queue as it is, even when its arguments differ. Then the imported queues are compared with the
contract in docs/wire-format.md, argument types included, and redeclared the way the library
declares them (`x-message-ttl` as a signed 64-bit integer, `l`), which RabbitMQ rejects with
406 PRECONDITION_FAILED when anything differs.

The test also runs `amqp-retry declare`, which declares the same objects through the library
itself and exits with status 1 when one differs.

Environment:
    AMQP_URL               the broker (required)
    AMQPRETRY_RABBITMQCTL  a rabbitmqctl command for the same broker (required); `make test`
                           sets both for its private broker
    AMQPRETRY_BIN          the amqp-retry executable (default: .build/debug/amqp-retry)

Run from the repository root with Tests/interop/run.sh test_definitions.
"""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import pika
import pika.exceptions
from pika.compat import long

URL_VARIABLE = "AMQP_URL"
RABBITMQCTL_VARIABLE = "AMQPRETRY_RABBITMQCTL"
BINARY_VARIABLE = "AMQPRETRY_BIN"
DEFAULT_BINARY = ".build/debug/amqp-retry"
DECLARE_TIMEOUT = 120
DEFINITIONS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "deploy", "rabbitmq", "definitions.json")

SERVICE_PREFIX = "amqpretry.service."
DELAY_PREFIX = "amqpretry.delay."
PARKING_QUEUE = "amqpretry.parked"
RABBITMQCTL_TIMEOUT = 120
# import_definitions returns before the import ends, so the test waits for the objects.
IMPORT_TIMEOUT = 60.0
PRECONDITION_FAILED = 406


class SetupError(Exception):
    """A missing component that stops the tests before they start."""


def delay_milliseconds(name):
    """Return the interval of a delay queue or exchange name such as amqpretry.delay.500ms, or None."""
    if not (name.startswith(DELAY_PREFIX) and name.endswith("ms")):
        return None
    digits = name[len(DELAY_PREFIX):-len("ms")]
    if not digits.isdigit() or digits.startswith("0"):
        return None
    return int(digits)


def expected_queue_arguments(name):
    """Return the arguments the library declares a queue with, as rabbitmqctl lists them:
    sorted [name, type, value] triples."""
    milliseconds = delay_milliseconds(name)
    if milliseconds is None:
        return []
    return [["x-dead-letter-exchange", "longstr", ""], ["x-message-ttl", "long", milliseconds]]


def library_queue_arguments(name):
    """Return the arguments the library declares a queue with, typed for pika as the library
    writes them: `l` for the TTL (pika.compat.long) and a long string for the exchange."""
    milliseconds = delay_milliseconds(name)
    if milliseconds is None:
        return {}
    return {"x-message-ttl": long(milliseconds), "x-dead-letter-exchange": ""}


def url_with_vhost(url, vhost):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


class Rabbitmqctl:
    """The rabbitmqctl command in AMQPRETRY_RABBITMQCTL."""

    def __init__(self, command):
        self.command = command

    def run(self, *arguments):
        result = subprocess.run([self.command, *arguments], stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=RABBITMQCTL_TIMEOUT)
        if result.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(arguments)} failed with status {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result.stdout

    def list(self, kind, vhost, *columns):
        """Return the rows of list_queues, list_exchanges or list_bindings as dictionaries."""
        output = self.run("-q", f"list_{kind}", "-p", vhost, "--formatter", "json", *columns)
        return json.loads(output) if output.strip() else []


class DefinitionsTest(unittest.TestCase):
    """Imports deploy/rabbitmq/definitions.json into a fresh virtual host and checks it."""

    ctl = None
    vhost = None
    folder = None

    @classmethod
    def setUpClass(cls):
        url = os.environ.get(URL_VARIABLE, "")
        command = os.environ.get(RABBITMQCTL_VARIABLE, "")
        if not url or not command:
            raise SetupError(f"the definitions test needs {URL_VARIABLE} and {RABBITMQCTL_VARIABLE} for "
                             "the same broker, because it imports definitions with rabbitmqctl: run "
                             f"`make test` without {URL_VARIABLE}, which starts a private broker and sets "
                             f"both, or set {RABBITMQCTL_VARIABLE} to a rabbitmqctl command for the broker "
                             f"in {URL_VARIABLE}")
        cls.binary = os.path.abspath(os.environ.get(BINARY_VARIABLE, DEFAULT_BINARY))
        if not os.access(cls.binary, os.X_OK):
            raise SetupError(f"amqp-retry executable {cls.binary} not found: run `swift build` or set "
                             f"{BINARY_VARIABLE} to its path")
        with open(DEFINITIONS_FILE, encoding="utf-8") as file:
            cls.definitions = json.load(file)

        cls.ctl = Rabbitmqctl(command)
        vhost = f"amqpretry-definitions-{secrets.token_hex(4)}"
        cls.url = url_with_vhost(url, vhost)
        user = urllib.parse.unquote(urllib.parse.urlsplit(url).username or "guest")
        cls.ctl.run("add_vhost", vhost)
        cls.vhost = vhost
        try:
            cls.ctl.run("set_permissions", "-p", cls.vhost, user, ".*", ".*", ".*")
            cls.import_definitions()
            cls.wait_for_import()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.vhost is not None:
                cls.ctl.run("delete_vhost", cls.vhost)
        finally:
            if cls.folder is not None:
                shutil.rmtree(cls.folder)

    @classmethod
    def import_definitions(cls):
        """Import a copy of the file with every object moved to the test's virtual host."""
        copy = json.loads(json.dumps(cls.definitions))
        for kind in ("queues", "exchanges", "bindings"):
            for item in copy.get(kind, []):
                item["vhost"] = cls.vhost
        # rabbitmqctl may run as the rabbitmq user, which must be able to read the copy.
        cls.folder = tempfile.mkdtemp(prefix="amqpretry-definitions-", dir="/tmp")
        os.chmod(cls.folder, 0o755)
        path = os.path.join(cls.folder, "definitions.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(copy, file)
        os.chmod(path, 0o644)
        cls.ctl.run("import_definitions", path)

    @classmethod
    def wait_for_import(cls):
        expected = {
            "queues": {queue["name"] for queue in cls.definitions.get("queues", [])},
            "exchanges": {exchange["name"] for exchange in cls.definitions.get("exchanges", [])},
        }
        binding_count = len(cls.definitions.get("bindings", []))
        deadline = time.monotonic() + IMPORT_TIMEOUT
        while time.monotonic() < deadline:
            queues = {row["name"] for row in cls.ctl.list("queues", cls.vhost, "name")}
            exchanges = {row["name"] for row in cls.ctl.list("exchanges", cls.vhost, "name")}
            bindings = [row for row in cls.ctl.list("bindings", cls.vhost, "source_name")
                        if row["source_name"] != ""]
            if expected["queues"] <= queues and expected["exchanges"] <= exchanges \
                    and len(bindings) >= binding_count:
                return
            time.sleep(0.5)
        raise AssertionError(f"rabbitmqctl import_definitions did not create every object of "
                             f"{DEFINITIONS_FILE} in vhost {cls.vhost} within {IMPORT_TIMEOUT:.0f} s; "
                             "the broker log names the objects it rejected")

    def connect(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.addCleanup(connection.close)
        return connection

    def queues_in_file(self):
        return self.definitions.get("queues", [])

    def delay_names_in_file(self):
        return sorted(queue["name"] for queue in self.queues_in_file() if delay_milliseconds(queue["name"]))

    def test_file_names_follow_contract(self):
        names = [queue["name"] for queue in self.queues_in_file()]
        self.assertIn(PARKING_QUEUE, names)
        self.assertTrue(any(name.startswith(SERVICE_PREFIX) for name in names), "no service queue")
        self.assertTrue(self.delay_names_in_file(), "no delay queue")
        for name in names:
            with self.subTest(queue=name):
                is_service = name.startswith(SERVICE_PREFIX) and len(name) > len(SERVICE_PREFIX)
                is_delay = delay_milliseconds(name) is not None
                self.assertTrue(name == PARKING_QUEUE or is_service or is_delay,
                                f"{name} is not a queue name of the contract")
        self.assertEqual(set(self.definitions) - {"queues", "exchanges", "bindings"}, set(),
                         "the file declares other objects than queues, exchanges and bindings")

    def test_file_declares_delay_exchange_and_binding(self):
        exchanges = {exchange["name"]: exchange for exchange in self.definitions.get("exchanges", [])}
        bindings = self.definitions.get("bindings", [])
        self.assertEqual(set(exchanges), set(self.delay_names_in_file()),
                         "every delay queue needs its exchange, and no other exchange belongs here")
        for name in self.delay_names_in_file():
            with self.subTest(delay=name):
                self.assertEqual(exchanges[name]["type"], "fanout")
                self.assertIs(exchanges[name]["durable"], True)
                self.assertIs(exchanges[name]["auto_delete"], False)
                self.assertIs(exchanges[name]["internal"], False)
                self.assertEqual(exchanges[name].get("arguments", {}), {})
                matching = [binding for binding in bindings
                            if binding["source"] == name and binding["destination"] == name]
                self.assertEqual(len(matching), 1, f"expected one binding of {name} to itself")
                self.assertEqual(matching[0]["destination_type"], "queue")
                self.assertEqual(matching[0]["routing_key"], "")
                self.assertEqual(matching[0].get("arguments", {}), {})
        self.assertEqual(len(bindings), len(self.delay_names_in_file()), "the file has extra bindings")

    def test_imported_queues_match_library(self):
        rows = {row["name"]: row for row in
                self.ctl.list("queues", self.vhost, "name", "durable", "auto_delete", "exclusive", "arguments")}
        for queue in self.queues_in_file():
            name = queue["name"]
            with self.subTest(queue=name):
                row = rows[name]
                self.assertIs(row["durable"], True)
                self.assertIs(row["auto_delete"], False)
                self.assertIs(row["exclusive"], False)
                self.assertEqual(sorted(row["arguments"]), expected_queue_arguments(name))

    def test_imported_exchanges_and_bindings(self):
        exchanges = {row["name"]: row for row in
                     self.ctl.list("exchanges", self.vhost, "name", "type", "durable", "auto_delete",
                                   "internal", "arguments")}
        bindings = self.ctl.list("bindings", self.vhost, "source_name", "destination_name",
                                 "destination_kind", "routing_key", "arguments")
        for name in self.delay_names_in_file():
            with self.subTest(delay=name):
                self.assertEqual(exchanges[name]["type"], "fanout")
                self.assertIs(exchanges[name]["durable"], True)
                self.assertIs(exchanges[name]["auto_delete"], False)
                self.assertIs(exchanges[name]["internal"], False)
                self.assertEqual(exchanges[name]["arguments"], [])
                self.assertIn({"source_name": name, "destination_name": name, "destination_kind": "queue",
                               "routing_key": "", "arguments": []}, bindings)

    def test_library_redeclare_accepted(self):
        connection = self.connect()
        for queue in self.queues_in_file():
            with self.subTest(queue=queue["name"]):
                channel = connection.channel()
                channel.queue_declare(queue["name"], durable=True,
                                      arguments=library_queue_arguments(queue["name"]))
                channel.close()
        for name in self.delay_names_in_file():
            with self.subTest(delay=name):
                channel = connection.channel()
                channel.exchange_declare(name, exchange_type="fanout", durable=True)
                channel.queue_bind(name, name, routing_key="")
                channel.close()

    def run_declare(self, services, delays):
        command = [self.binary, "declare", "--url", self.url]
        for milliseconds in delays:
            command += ["--delay", str(milliseconds)]
        return subprocess.run(command + services, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=DECLARE_TIMEOUT)

    def test_amqp_retry_declare_accepted(self):
        services = sorted(queue["name"][len(SERVICE_PREFIX):] for queue in self.queues_in_file()
                          if queue["name"].startswith(SERVICE_PREFIX))
        delays = [delay_milliseconds(name) for name in self.delay_names_in_file()]

        result = self.run_declare(services, delays)

        self.assertEqual(result.returncode, 0, f"amqp-retry declare failed:\n{result.stdout}{result.stderr}")
        self.assertNotIn("DIFFERS", result.stdout)

    def test_amqp_retry_declare_reports_difference(self):
        """A queue with other arguments makes `amqp-retry declare` fail, so the check above can fail."""
        service = f"interop.{secrets.token_hex(4)}.wrong"
        channel = self.connect().channel()
        channel.queue_declare(SERVICE_PREFIX + service, durable=True, arguments={"x-message-ttl": long(1000)})
        channel.close()

        result = self.run_declare([service], [])

        self.assertEqual(result.returncode, 1, f"amqp-retry declare:\n{result.stdout}{result.stderr}")
        self.assertIn("DIFFERS", result.stdout)
        self.assertIn(SERVICE_PREFIX + service, result.stdout)

    def test_mismatched_redeclare_rejected(self):
        """Redeclaring with other arguments fails, so the check above can fail too."""
        delay = self.delay_names_in_file()[0]
        milliseconds = delay_milliseconds(delay)
        cases = [
            (delay, {"x-message-ttl": long(milliseconds + 1), "x-dead-letter-exchange": ""}),
            (delay, {}),
            (PARKING_QUEUE, {"x-message-ttl": long(milliseconds)}),
        ]
        connection = self.connect()
        for name, arguments in cases:
            with self.subTest(queue=name, arguments=arguments):
                channel = connection.channel()
                with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as raised:
                    channel.queue_declare(name, durable=True, arguments=arguments)
                self.assertEqual(raised.exception.reply_code, PRECONDITION_FAILED)

    def test_integer_width_equivalent(self):
        """RabbitMQ compares integer arguments by value: pika's `I` matches the file's `l`."""
        connection = self.connect()
        for name in self.delay_names_in_file():
            with self.subTest(delay=name):
                channel = connection.channel()
                # A plain int below 2**31 goes out as a signed 32-bit integer (`I`).
                channel.queue_declare(name, durable=True, arguments={
                    "x-message-ttl": delay_milliseconds(name), "x-dead-letter-exchange": ""})
                channel.close()


if __name__ == "__main__":
    unittest.main()
