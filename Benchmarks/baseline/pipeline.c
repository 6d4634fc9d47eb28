/* W1 and W2: background invocations through a worker to a callback consumer.
 *
 * Three threads, each with its own connection: the main thread publishes the invocations
 * (confirms awaited per batch, or paced at a fixed rate), a worker thread calls the service and
 * publishes retries and callbacks, and a counter thread consumes the callbacks. */
#include "baseline.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    long count;
    long payload_size;
    const char *service;
    const char *callback;
    int64_t repeats;
    int64_t interval_ms;
    /* Invocations per second, or 0 to publish as fast as confirms allow. */
    double rate;
    long batch;
} pipeline_options;

static void publish_invocation(bench_connection *connection, const pipeline_options *options, long index,
                               char *payload, const char *queue) {
    char cid[CID_LENGTH + 1];
    char orig_cid[CID_LENGTH + 1];
    char message_id[UUID_LENGTH + 1];
    char request_timestamp[TIMESTAMP_LENGTH + 1];
    make_cid(cid);
    make_cid(orig_cid);
    make_uuid(message_id);
    make_wire_timestamp(request_timestamp);
    make_payload(payload, (size_t)options->payload_size, index);

    amqp_table_entry_t entries[] = {
        {.key = bytes_of("amqpretry-version"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-mode"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("async")}},
        {.key = bytes_of("amqpretry-target"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(options->service)}},
        {.key = bytes_of("amqpretry-attempt"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-source"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("")}},
        {.key = bytes_of("amqpretry-repeats"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = options->repeats}},
        {.key = bytes_of("amqpretry-interval-ms"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = options->interval_ms}},
        {.key = bytes_of("amqpretry-orig-cid"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(orig_cid)}},
        {.key = bytes_of("amqpretry-req-ts"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(request_timestamp)}},
        /* Last, so that an invocation without a callback leaves it out. */
        {.key = bytes_of("amqpretry-callback"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(options->callback)}},
    };
    int header_count = (int)(sizeof entries / sizeof entries[0]) - (options->callback[0] == '\0' ? 1 : 0);
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG,
        .content_type = bytes_of("application/json"),
        .delivery_mode = AMQP_DELIVERY_PERSISTENT,
        .correlation_id = bytes_of(cid),
        .message_id = bytes_of(message_id),
        .timestamp = (uint64_t)time(NULL),
        .headers = {.num_entries = header_count, .entries = entries},
    };
    amqp_bytes_t body = {.len = (size_t)options->payload_size, .bytes = payload};
    bench_publish(connection, "", queue, true, &properties, body);
}

/* Reads confirms until `when` (a monotonic time in ns). */
static void read_confirms_until(bench_connection *connection, uint64_t when) {
    bench_event event;
    for (uint64_t now = monotonic_ns(); now < when; now = monotonic_ns()) {
        int milliseconds = (int)((when - now) / 1000000u);
        if (bench_read_event(connection, &event, milliseconds) == EVENT_DELIVERY) {
            die("a delivery arrived on a connection that only publishes");
        }
    }
}

static void publish_invocations(const pipeline_options *options, uint64_t deadline) {
    bench_connection connection;
    char queue[300];
    char *payload = malloc((size_t)options->payload_size);
    if (payload == NULL) {
        die("out of memory");
    }
    service_queue_name(queue, sizeof queue, options->service);
    bench_connect(&connection);
    bench_declare_service_queue(&connection, options->service);

    uint64_t start = monotonic_ns();
    for (long index = 0; index < options->count; index++) {
        check_deadline(deadline, "publishing the invocations");
        if (options->rate > 0) {
            read_confirms_until(&connection, start + (uint64_t)((double)index * 1e9 / options->rate));
        }
        publish_invocation(&connection, options, index, payload, queue);
        if (options->rate <= 0 && (index + 1) % options->batch == 0) {
            bench_wait_for_confirms(&connection, deadline);
        }
    }
    bench_wait_for_confirms(&connection, deadline);
    bench_close(&connection);
    free(payload);
}

void *run_counter(void *argument) {
    counter_options *options = argument;
    bench_connection connection;
    bench_connect(&connection);
    bench_declare_service_queue(&connection, options->queue);
    bench_set_prefetch(&connection, options->prefetch);
    char queue[300];
    service_queue_name(queue, sizeof queue, options->queue);
    bench_consume(&connection, queue, false);
    atomic_store(&options->ready, true);

    bench_event event;
    uint64_t last_tag = 0;
    uint64_t acked_tag = 0;
    while (atomic_load(&options->received) < options->expected) {
        check_deadline(options->deadline, "counting the callbacks");
        if (bench_read_event(&connection, &event, 20) == EVENT_DELIVERY) {
            last_tag = event.delivery_tag;
            if (atomic_fetch_add(&options->received, 1) + 1 == options->expected) {
                options->finished_ns = monotonic_ns();
            }
        }
        bench_release_event(&event);
        bool drained = !amqp_frames_enqueued(connection.state) && !amqp_data_in_buffer(connection.state);
        if (last_tag > acked_tag && (drained || atomic_load(&options->received) == options->expected)) {
            bench_ack(&connection, last_tag, true);
            acked_tag = last_tag;
        }
    }
    bench_close(&connection);
    return NULL;
}

static int compare_doubles(const void *left, const void *right) {
    double a = *(const double *)left;
    double b = *(const double *)right;
    return (a > b) - (a < b);
}

/* Prints the nearest-rank p50, p99 and the maximum of `values`, which it sorts. */
void print_percentiles(const char *prefix, double *values, long count) {
    if (count == 0) {
        printf("%s_p50=nan %s_p99=nan %s_max=nan\n", prefix, prefix, prefix);
        return;
    }
    qsort(values, (size_t)count, sizeof values[0], compare_doubles);
    long p50 = (long)ceil(0.50 * (double)count) - 1;
    long p99 = (long)ceil(0.99 * (double)count) - 1;
    printf("%s_p50=%.3f %s_p99=%.3f %s_max=%.3f\n", prefix, values[p50], prefix, values[p99], prefix,
           values[count - 1]);
}

/* Prints the lateness of every retry: the time between two handler calls of one invocation
 * minus the configured interval, in milliseconds. */
static void print_lateness(const pipeline_options *options, _Atomic uint64_t *stamps, int failing_attempts) {
    double *lateness = malloc(sizeof(double) * (size_t)(options->count * failing_attempts));
    if (lateness == NULL) {
        die("out of memory");
    }
    long count = 0;
    for (long index = 0; index < options->count; index++) {
        for (int attempt = 1; attempt <= failing_attempts; attempt++) {
            uint64_t before = atomic_load(&stamps[index * 3 + attempt - 1]);
            uint64_t after = atomic_load(&stamps[index * 3 + attempt]);
            if (before == 0 || after == 0) {
                die("invocation %ld has no handler call for attempt %d or %d", index, attempt, attempt + 1);
            }
            lateness[count++] = ((double)(after - before) - (double)options->interval_ms * 1e6) / 1e6;
        }
    }
    print_percentiles("lateness_ms", lateness, count);
    free(lateness);
}

static void wait_until_ready(atomic_bool *ready, uint64_t deadline) {
    struct timespec pause = {.tv_nsec = 1000000};
    while (!atomic_load(ready)) {
        check_deadline(deadline, "starting the consumers");
        nanosleep(&pause, NULL);
    }
}

/* Publishes invocations without a worker: W4 fills a worker's queue with them. */
int command_publish(int argc, char **argv) {
    pipeline_options options = {
        .count = option_number(argc, argv, "--count", 1, 1, 10000000),
        .payload_size = option_number(argc, argv, "--payload-bytes", 100, 32, 1000000),
        .service = option_text(argc, argv, "--service", NULL),
        .callback = option_text(argc, argv, "--callback", ""),
        .repeats = option_number(argc, argv, "--repeats", 1, 1, 1000000),
        .interval_ms = option_number(argc, argv, "--interval-ms", 1000, 1, 2147483647),
        .batch = option_number(argc, argv, "--batch", 100, 1, TRACK_WINDOW / 2),
    };
    uint64_t start = monotonic_ns();
    publish_invocations(&options, deadline_after_seconds(settings.max_seconds));
    double seconds = (double)(monotonic_ns() - start) / 1e9;
    printf("seconds=%.4f rate=%.1f\n", seconds, (double)options.count / seconds);
    return 0;
}

int command_pipeline(int argc, char **argv) {
    pipeline_options options = {
        .count = option_number(argc, argv, "--count", 20000, 1, 10000000),
        .payload_size = option_number(argc, argv, "--payload-bytes", 100, 32, 1000000),
        .service = option_text(argc, argv, "--service", NULL),
        .callback = option_text(argc, argv, "--callback", NULL),
        .repeats = option_number(argc, argv, "--repeats", 2, 1, 1000000),
        .interval_ms = option_number(argc, argv, "--interval-ms", 100, 1, 2147483647),
        .rate = (double)option_number(argc, argv, "--rate", 0, 0, 1000000),
        .batch = option_number(argc, argv, "--batch", 100, 1, TRACK_WINDOW / 2),
    };
    int failing_attempts = (int)option_number(argc, argv, "--failing-attempts", 0, 0, 2);
    uint16_t prefetch = (uint16_t)option_number(argc, argv, "--prefetch", 64, 1, 4096);
    uint64_t deadline = deadline_after_seconds(settings.max_seconds);

    _Atomic uint64_t *stamps = calloc((size_t)options.count * 3, sizeof *stamps);
    atomic_bool stop = false;
    worker_options worker = {.service = options.service, .prefetch = prefetch, .failing_attempts = failing_attempts,
                             .stamps = stamps, .stamp_count = options.count, .stop = &stop, .deadline = deadline};
    counter_options counter = {.queue = options.callback, .prefetch = prefetch, .expected = options.count,
                               .deadline = deadline};
    if (stamps == NULL) {
        die("out of memory");
    }
    pthread_t worker_thread;
    pthread_t counter_thread;
    pthread_create(&worker_thread, NULL, run_worker, &worker);
    pthread_create(&counter_thread, NULL, run_counter, &counter);
    wait_until_ready(&worker.ready, deadline);
    wait_until_ready(&counter.ready, deadline);

    uint64_t start = monotonic_ns();
    publish_invocations(&options, deadline);
    pthread_join(counter_thread, NULL);
    atomic_store(&stop, true);
    pthread_join(worker_thread, NULL);

    double seconds = (double)(counter.finished_ns - start) / 1e9;
    printf("seconds=%.4f rate=%.1f\n", seconds, (double)options.count / seconds);
    if (failing_attempts > 0) {
        print_lateness(&options, stamps, failing_attempts);
    }
    free(stamps);
    return 0;
}
