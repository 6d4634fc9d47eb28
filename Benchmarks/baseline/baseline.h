/*
 * The baseline of `make bench`: the broker work of each workload written directly on
 * librabbitmq 0.11, with none of AMQPRetry's code. It sends and reads the messages of
 * docs/wire-format.md with the same durability as AMQPRetry: persistent mandatory messages,
 * publisher confirms, manual acks, and an invocation acked only after its retry or callback
 * is confirmed.
 */
#ifndef AMQPRETRY_BASELINE_H
#define AMQPRETRY_BASELINE_H

#include <amqp.h>
#include <amqp_framing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Unconfirmed publishes and unacknowledged deliveries one connection tracks at most. */
#define TRACK_WINDOW 8192

/* The channel every connection uses, as AMQPRetry does. */
#define BENCH_CHANNEL 1

/* One connection with its channel in confirm mode, and what it still waits for. */
typedef struct {
    amqp_connection_state_t state;
    /* Publish sequence number of the next publish (confirm mode numbers them from 1). */
    uint64_t next_sequence;
    /* Every publish below this sequence number is confirmed. */
    uint64_t lowest_unconfirmed;
    /* Confirm flags of the sequence numbers at and above lowest_unconfirmed. */
    bool confirmed[TRACK_WINDOW];
} bench_connection;

/* What one read from a connection produced. */
typedef enum { EVENT_NONE, EVENT_DELIVERY, EVENT_CONFIRM } bench_event_kind;

typedef struct {
    bench_event_kind kind;
    uint64_t delivery_tag;
    bool redelivered;
    /* The delivery's properties and body; valid until bench_release_event. */
    amqp_message_t message;
} bench_event;

/* Settings read from the environment and the command line. */
typedef struct {
    char url[512];
    /* How long any one run may take before it fails, in seconds. */
    int max_seconds;
} bench_settings;

extern bench_settings settings;

/* Connections, frames and publishes (connection.c). */
_Noreturn void die(const char *format, ...);
uint64_t monotonic_ns(void);
uint64_t deadline_after_seconds(int seconds);
void check_deadline(uint64_t deadline, const char *what);
void bench_connect(bench_connection *connection);
void bench_close(bench_connection *connection);
void bench_check_reply(bench_connection *connection, const char *operation);
void bench_set_prefetch(bench_connection *connection, uint16_t count);
void bench_consume(bench_connection *connection, const char *queue, bool no_ack);
bench_event_kind bench_read_event(bench_connection *connection, bench_event *event, int timeout_ms);
void bench_release_event(bench_event *event);
uint64_t bench_publish(bench_connection *connection, const char *exchange, const char *routing_key, bool mandatory,
                       amqp_basic_properties_t *properties, amqp_bytes_t body);
bool bench_is_confirmed(const bench_connection *connection, uint64_t sequence);
void bench_wait_for_confirms(bench_connection *connection, uint64_t deadline);
void bench_ack(bench_connection *connection, uint64_t delivery_tag, bool multiple);
void bench_declare_service_queue(bench_connection *connection, const char *service);
void bench_declare_delay(bench_connection *connection, int64_t milliseconds);
const char *bench_broker_version(bench_connection *connection, char *buffer, size_t size);

/* Wire-format values (wire.c). */
#define CID_LENGTH 28
#define TIMESTAMP_LENGTH 32
#define UUID_LENGTH 36
void make_cid(char out[CID_LENGTH + 1]);
void make_uuid(char out[UUID_LENGTH + 1]);
void make_wire_timestamp(char out[TIMESTAMP_LENGTH + 1]);
void service_queue_name(char *out, size_t size, const char *service);
void delay_exchange_name(char *out, size_t size, int64_t milliseconds);
amqp_bytes_t bytes_of(const char *text);
const amqp_field_value_t *find_header(const amqp_basic_properties_t *properties, const char *key);
int64_t header_integer(const amqp_basic_properties_t *properties, const char *key, int64_t fallback);
bool header_text(const amqp_basic_properties_t *properties, const char *key, char *out, size_t size);
void copy_bytes(char *out, size_t size, amqp_bytes_t bytes);
void make_payload(char *out, size_t size, long index);
long payload_index(amqp_bytes_t body);

/* The worker: consumes a service queue and carries out retries, callbacks and replies (worker.c). */
typedef struct {
    const char *service;
    uint16_t prefetch;
    /* Attempts up to this number fail; 0 makes every call succeed. */
    int failing_attempts;
    /* When set, stamps[index * 3 + attempt - 1] receives the handler-call time in ns. */
    _Atomic uint64_t *stamps;
    long stamp_count;
    /* Set by another thread to end the loop. */
    atomic_bool *stop;
    atomic_bool ready;
    /* Handled deliveries, and the time of the first in ns. */
    atomic_long handled;
    _Atomic uint64_t first_handled_ns;
    uint64_t deadline;
} worker_options;

void *run_worker(void *options);

/* The callback consumer: counts and acknowledges callbacks (pipeline.c). */
typedef struct {
    const char *queue;
    uint16_t prefetch;
    long expected;
    atomic_bool ready;
    atomic_long received;
    uint64_t finished_ns;
    uint64_t deadline;
} counter_options;

void *run_counter(void *options);

/* Subcommands. */
int command_pipeline(int argc, char **argv);
int command_publish(int argc, char **argv);
int command_rpc(int argc, char **argv);
int command_worker(int argc, char **argv);
int command_admin(int argc, char **argv);
int command_info(int argc, char **argv);

/* Command-line helpers (main.c). */
const char *option_text(int argc, char **argv, const char *name, const char *fallback);
long option_number(int argc, char **argv, const char *name, long fallback, long minimum, long maximum);
void print_percentiles(const char *prefix, double *values, long count);

#endif
