/* W3: blocking calls over RabbitMQ's direct reply-to, by hand.
 *
 * A worker thread replies to each request; the main thread keeps up to `callers` requests in
 * flight on one connection that consumes amq.rabbitmq.reply-to in no-ack mode, and records the
 * time from each publish to its reply. */
#include "baseline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CALLERS 64
#define REPLY_QUEUE "amq.rabbitmq.reply-to"

typedef struct {
    char cid[CID_LENGTH + 1];
    uint64_t sent_ns;
    bool waiting;
} call_slot;

static void send_request(bench_connection *connection, const char *queue, const char *service, call_slot *slot,
                         char *payload, long payload_size, long index) {
    char orig_cid[CID_LENGTH + 1];
    char message_id[UUID_LENGTH + 1];
    char request_timestamp[TIMESTAMP_LENGTH + 1];
    make_cid(slot->cid);
    make_cid(orig_cid);
    make_uuid(message_id);
    make_wire_timestamp(request_timestamp);
    make_payload(payload, (size_t)payload_size, index);

    amqp_table_entry_t entries[] = {
        {.key = bytes_of("amqpretry-version"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-mode"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("sync")}},
        {.key = bytes_of("amqpretry-target"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(service)}},
        {.key = bytes_of("amqpretry-attempt"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-source"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of("")}},
        {.key = bytes_of("amqpretry-repeats"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1}},
        {.key = bytes_of("amqpretry-interval-ms"), .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 1000}},
        {.key = bytes_of("amqpretry-orig-cid"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(orig_cid)}},
        {.key = bytes_of("amqpretry-req-ts"), .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = bytes_of(request_timestamp)}},
    };
    amqp_basic_properties_t properties = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                  AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                  AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG,
        .content_type = bytes_of("application/json"),
        .delivery_mode = AMQP_DELIVERY_NONPERSISTENT,
        .correlation_id = bytes_of(slot->cid),
        .reply_to = bytes_of(REPLY_QUEUE),
        /* The caller's timeout, 30 s, as AMQPRetry's default. */
        .expiration = bytes_of("30000"),
        .message_id = bytes_of(message_id),
        .timestamp = (uint64_t)time(NULL),
        .headers = {.num_entries = sizeof entries / sizeof entries[0], .entries = entries},
    };
    amqp_bytes_t body = {.len = (size_t)payload_size, .bytes = payload};
    slot->sent_ns = monotonic_ns();
    slot->waiting = true;
    bench_publish(connection, "", queue, true, &properties, body);
}

static call_slot *slot_of_reply(call_slot *slots, long callers, const amqp_message_t *reply) {
    if (!(reply->properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)) {
        return NULL;
    }
    amqp_bytes_t cid = reply->properties.correlation_id;
    for (long index = 0; index < callers; index++) {
        if (slots[index].waiting && cid.len == CID_LENGTH && memcmp(cid.bytes, slots[index].cid, CID_LENGTH) == 0) {
            return &slots[index];
        }
    }
    return NULL;
}

int command_rpc(int argc, char **argv) {
    long count = option_number(argc, argv, "--count", 2000, 1, 10000000);
    long callers = option_number(argc, argv, "--callers", 1, 1, MAX_CALLERS);
    long payload_size = option_number(argc, argv, "--payload-bytes", 100, 32, 1000000);
    const char *service = option_text(argc, argv, "--service", NULL);
    uint64_t deadline = deadline_after_seconds(settings.max_seconds);

    atomic_bool stop = false;
    worker_options worker = {.service = service, .prefetch = 64, .stop = &stop, .deadline = deadline};
    pthread_t worker_thread;
    pthread_create(&worker_thread, NULL, run_worker, &worker);

    bench_connection connection;
    bench_connect(&connection);
    bench_consume(&connection, REPLY_QUEUE, true);
    struct timespec pause = {.tv_nsec = 1000000};
    while (!atomic_load(&worker.ready)) {
        check_deadline(deadline, "starting the worker");
        nanosleep(&pause, NULL);
    }

    char queue[300];
    service_queue_name(queue, sizeof queue, service);
    char *payload = malloc((size_t)payload_size);
    double *latencies = malloc(sizeof(double) * (size_t)count);
    call_slot slots[MAX_CALLERS] = {0};
    if (payload == NULL || latencies == NULL) {
        die("out of memory");
    }

    uint64_t start = monotonic_ns();
    long sent = 0;
    long received = 0;
    for (; sent < callers && sent < count; sent++) {
        send_request(&connection, queue, service, &slots[sent], payload, payload_size, sent);
    }
    bench_event event;
    while (received < count) {
        check_deadline(deadline, "the blocking calls");
        if (bench_read_event(&connection, &event, 20) == EVENT_DELIVERY) {
            call_slot *slot = slot_of_reply(slots, callers, &event.message);
            if (slot == NULL) {
                die("a reply matched no waiting call");
            }
            latencies[received++] = (double)(monotonic_ns() - slot->sent_ns) / 1e6;
            slot->waiting = false;
            if (sent < count) {
                send_request(&connection, queue, service, slot, payload, payload_size, sent++);
            }
        }
        bench_release_event(&event);
    }
    double seconds = (double)(monotonic_ns() - start) / 1e9;

    bench_wait_for_confirms(&connection, deadline);
    bench_close(&connection);
    atomic_store(&stop, true);
    pthread_join(worker_thread, NULL);

    printf("seconds=%.4f rate=%.1f\n", seconds, (double)count / seconds);
    print_percentiles("latency_ms", latencies, count);
    free(latencies);
    free(payload);
    return 0;
}
