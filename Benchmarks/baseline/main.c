/* amqp-retry-baseline: the librabbitmq baseline of `make bench`.
 *
 *   amqp-retry-baseline COMMAND [--option value]...
 *
 * Commands, by the workloads of docs/benchmarks.md they serve: pipeline (W1, W2), rpc (W3),
 * worker and publish (W4, W5), admin (counting, purging and deleting queues for the benchmark driver) and
 * info (the broker's product and version). The broker is AMQP_URL's, which must be on the
 * loopback interface. Results go to standard output as key=value pairs. */
#include "baseline.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *option_text(int argc, char **argv, const char *name, const char *fallback) {
    for (int index = 2; index + 1 < argc; index++) {
        if (strcmp(argv[index], name) == 0) {
            return argv[index + 1];
        }
    }
    if (fallback == NULL) {
        die("missing option %s", name);
    }
    return fallback;
}

long option_number(int argc, char **argv, const char *name, long fallback, long minimum, long maximum) {
    const char *text = option_text(argc, argv, name, "");
    if (text[0] == '\0') {
        return fallback;
    }
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < minimum || value > maximum) {
        die("invalid %s '%s': expected a whole number from %ld to %ld", name, text, minimum, maximum);
    }
    return value;
}

static atomic_bool stop_requested = false;

static void request_stop(int signal_number) {
    (void)signal_number;
    atomic_store(&stop_requested, true);
}

/* Runs a worker until SIGTERM or SIGINT, printing "ready" once it consumes and
 * "first_handled_ns=<CLOCK_MONOTONIC time>" when it handles its first delivery. */
int command_worker(int argc, char **argv) {
    worker_options worker = {
        .service = option_text(argc, argv, "--service", NULL),
        .prefetch = (uint16_t)option_number(argc, argv, "--prefetch", 64, 1, 65535),
        .failing_attempts = (int)option_number(argc, argv, "--failing-attempts", 0, 0, 1000000),
        .stop = &stop_requested,
        .deadline = deadline_after_seconds(settings.max_seconds),
    };
    signal(SIGTERM, request_stop);
    signal(SIGINT, request_stop);
    /* A parent may start this process with the signals blocked, as a thread of Swift's
     * cooperative pool that starts it through Foundation's Process does. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, run_worker, &worker);

    bool announced_ready = false;
    bool announced_first = false;
    struct timespec pause = {.tv_nsec = 1000000};
    while (!atomic_load(&stop_requested)) {
        check_deadline(worker.deadline, "the worker");
        if (!announced_ready && atomic_load(&worker.ready)) {
            printf("ready\n");
            fflush(stdout);
            announced_ready = true;
        }
        if (!announced_first && atomic_load(&worker.handled) > 0) {
            printf("first_handled_ns=%llu\n", (unsigned long long)atomic_load(&worker.first_handled_ns));
            fflush(stdout);
            announced_first = true;
        }
        nanosleep(&pause, NULL);
    }
    pthread_join(thread, NULL);
    printf("handled=%ld\n", atomic_load(&worker.handled));
    return 0;
}

/* Recovers the channel after the broker closed it for a failed admin step. */
static bool admin_step_succeeded(bench_connection *connection) {
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(connection->state);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
        return true;
    }
    if (reply.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || reply.reply.id != AMQP_CHANNEL_CLOSE_METHOD) {
        bench_check_reply(connection, "an admin step");
    }
    amqp_channel_close_ok_t close_ok = {0};
    amqp_send_method(connection->state, BENCH_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
    amqp_channel_open(connection->state, BENCH_CHANNEL);
    bench_check_reply(connection, "channel.open");
    return false;
}

static void admin_step(bench_connection *connection, const char *step) {
    const char *colon = strchr(step, ':');
    if (colon == NULL) {
        die("invalid admin step '%s': expected ACTION:NAME", step);
    }
    char action[32];
    copy_bytes(action, sizeof action, (amqp_bytes_t){.len = (size_t)(colon - step), .bytes = (void *)step});
    amqp_bytes_t name = bytes_of(colon + 1);
    amqp_channel_t channel = BENCH_CHANNEL;
    amqp_connection_state_t state = connection->state;

    if (strcmp(action, "delete-queue") == 0 || strcmp(action, "delete-queue-if-empty") == 0) {
        bool if_empty = strcmp(action, "delete-queue-if-empty") == 0;
        amqp_queue_delete_ok_t *ok = amqp_queue_delete(state, channel, name, if_empty, if_empty);
        bool deleted = admin_step_succeeded(connection);
        printf("%s queue %s%s\n", deleted ? "deleted" : "kept", colon + 1,
               deleted ? "" : " because it holds messages or has consumers");
        (void)ok;
    } else if (strcmp(action, "delete-exchange-if-unused") == 0) {
        amqp_exchange_delete(state, channel, name, 1);
        bool deleted = admin_step_succeeded(connection);
        printf("%s exchange %s\n", deleted ? "deleted" : "kept", colon + 1);
    } else if (strcmp(action, "purge") == 0) {
        amqp_queue_purge_ok_t *ok = amqp_queue_purge(state, channel, name);
        bench_check_reply(connection, "queue.purge");
        printf("purged=%u\n", ok->message_count);
    } else if (strcmp(action, "count") == 0) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(state, channel, name, 1, 0, 0, 0, amqp_empty_table);
        bool exists = admin_step_succeeded(connection);
        printf("count=%ld\n", exists ? (long)ok->message_count : -1L);
    } else {
        die("unknown admin action '%s'", action);
    }
}

/* Runs admin steps in order: delete-queue:NAME, delete-queue-if-empty:NAME,
 * delete-exchange-if-unused:NAME, purge:NAME, count:NAME. */
int command_admin(int argc, char **argv) {
    bench_connection connection;
    bench_connect(&connection);
    for (int index = 2; index < argc; index++) {
        admin_step(&connection, argv[index]);
    }
    bench_close(&connection);
    return 0;
}

int command_info(int argc, char **argv) {
    (void)argc;
    (void)argv;
    bench_connection connection;
    char version[160];
    bench_connect(&connection);
    printf("broker=%s\n", bench_broker_version(&connection, version, sizeof version));
    printf("librabbitmq=%s\n", amqp_version());
    bench_close(&connection);
    return 0;
}

int main(int argc, char **argv) {
    const char *url = getenv("AMQP_URL");
    if (url == NULL || url[0] == '\0') {
        die("AMQP_URL is not set; set it to the broker's amqp:// URL");
    }
    if (strlen(url) >= sizeof settings.url) {
        die("AMQP_URL is longer than %zu bytes", sizeof settings.url - 1);
    }
    snprintf(settings.url, sizeof settings.url, "%s", url);
    if (argc < 2) {
        die("usage: amqp-retry-baseline pipeline|publish|rpc|worker|admin|info [--option value]...");
    }
    settings.max_seconds = (int)option_number(argc, argv, "--max-seconds", 300, 1, 86400);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *command = argv[1];
    if (strcmp(command, "pipeline") == 0) {
        return command_pipeline(argc, argv);
    }
    if (strcmp(command, "publish") == 0) {
        return command_publish(argc, argv);
    }
    if (strcmp(command, "rpc") == 0) {
        return command_rpc(argc, argv);
    }
    if (strcmp(command, "worker") == 0) {
        return command_worker(argc, argv);
    }
    if (strcmp(command, "admin") == 0) {
        return command_admin(argc, argv);
    }
    if (strcmp(command, "info") == 0) {
        return command_info(argc, argv);
    }
    die("unknown command '%s'; expected pipeline, publish, rpc, worker, admin or info", command);
}
