/* The values of docs/wire-format.md that the baseline writes and reads. */
#include "baseline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char base32_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* xorshift128+, seeded once per thread from getrandom: CIDs and message IDs need to be unique,
 * not secret. */
static _Thread_local uint64_t random_state[2];

static uint64_t next_random(void) {
    if (random_state[0] == 0 && random_state[1] == 0) {
        if (getrandom(random_state, sizeof random_state, 0) != sizeof random_state) {
            die("getrandom failed");
        }
        random_state[0] |= 1;
    }
    uint64_t x = random_state[0];
    uint64_t const y = random_state[1];
    random_state[0] = y;
    x ^= x << 23;
    random_state[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
    return random_state[1] + y;
}

/* A CID: "K" and 27 base32 digits of a 128-bit number whose top bit is set, as AMQPRetry makes
 * them, so the first digit is 0 and the second one of 4 to 7. */
void make_cid(char out[CID_LENGTH + 1]) {
    out[0] = 'K';
    out[1] = '0';
    out[2] = base32_alphabet[4 + (next_random() & 3)];
    uint64_t bits = 0;
    for (int index = 3; index < CID_LENGTH; index++) {
        if (index % 12 == 3) {
            bits = next_random();
        }
        out[index] = base32_alphabet[bits & 31];
        bits >>= 5;
    }
    out[CID_LENGTH] = '\0';
}

/* A random version 4 UUID in lower case, as AMQPRetry's message IDs are. */
void make_uuid(char out[UUID_LENGTH + 1]) {
    uint64_t high = next_random();
    uint64_t low = next_random();
    high = (high & ~0xF000ull) | 0x4000ull;
    low = (low & ~(3ull << 62)) | (2ull << 62);
    snprintf(out, UUID_LENGTH + 1, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(high >> 32),
             (unsigned)((high >> 16) & 0xFFFF), (unsigned)(high & 0xFFFF), (unsigned)(low >> 48),
             (unsigned long long)(low & 0xFFFFFFFFFFFFull));
}

/* The current time as amqpretry-req-ts writes it: ISO 8601 in UTC with microseconds. */
void make_wire_timestamp(char out[TIMESTAMP_LENGTH + 1]) {
    struct timespec now;
    struct tm utc;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    size_t length = strftime(out, TIMESTAMP_LENGTH + 1, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out + length, TIMESTAMP_LENGTH + 1 - length, ".%06ld+00:00", now.tv_nsec / 1000);
}

void service_queue_name(char *out, size_t size, const char *service) {
    snprintf(out, size, "amqpretry.service.%s", service);
}

void delay_exchange_name(char *out, size_t size, int64_t milliseconds) {
    snprintf(out, size, "amqpretry.delay.%lldms", (long long)milliseconds);
}

amqp_bytes_t bytes_of(const char *text) {
    return (amqp_bytes_t){.len = strlen(text), .bytes = (void *)text};
}

void copy_bytes(char *out, size_t size, amqp_bytes_t bytes) {
    size_t length = bytes.len < size - 1 ? bytes.len : size - 1;
    memcpy(out, bytes.bytes, length);
    out[length] = '\0';
}

const amqp_field_value_t *find_header(const amqp_basic_properties_t *properties, const char *key) {
    if (!(properties->_flags & AMQP_BASIC_HEADERS_FLAG)) {
        return NULL;
    }
    size_t length = strlen(key);
    for (int index = 0; index < properties->headers.num_entries; index++) {
        const amqp_table_entry_t *entry = &properties->headers.entries[index];
        if (entry->key.len == length && memcmp(entry->key.bytes, key, length) == 0) {
            return &entry->value;
        }
    }
    return NULL;
}

int64_t header_integer(const amqp_basic_properties_t *properties, const char *key, int64_t fallback) {
    const amqp_field_value_t *value = find_header(properties, key);
    if (value == NULL) {
        return fallback;
    }
    switch (value->kind) {
    case AMQP_FIELD_KIND_I8: return value->value.i8;
    case AMQP_FIELD_KIND_U8: return value->value.u8;
    case AMQP_FIELD_KIND_I16: return value->value.i16;
    case AMQP_FIELD_KIND_U16: return value->value.u16;
    case AMQP_FIELD_KIND_I32: return value->value.i32;
    case AMQP_FIELD_KIND_U32: return value->value.u32;
    case AMQP_FIELD_KIND_I64: return value->value.i64;
    case AMQP_FIELD_KIND_U64: return (int64_t)value->value.u64;
    default: return fallback;
    }
}

bool header_text(const amqp_basic_properties_t *properties, const char *key, char *out, size_t size) {
    const amqp_field_value_t *value = find_header(properties, key);
    if (value == NULL || (value->kind != AMQP_FIELD_KIND_UTF8 && value->kind != AMQP_FIELD_KIND_BYTES)) {
        out[0] = '\0';
        return false;
    }
    copy_bytes(out, size, value->value.bytes);
    return true;
}

/* A JSON request of exactly `size` bytes (at least 32) that carries its invocation's index. */
void make_payload(char *out, size_t size, long index) {
    int prefix = snprintf(out, size, "{\"i\":%ld,\"p\":\"", index);
    memset(out + prefix, 'x', size - (size_t)prefix - 2);
    memcpy(out + size - 2, "\"}", 2);
}

long payload_index(amqp_bytes_t body) {
    char digits[24];
    if (body.len < 6 || memcmp(body.bytes, "{\"i\":", 5) != 0) {
        return -1;
    }
    copy_bytes(digits, sizeof digits, (amqp_bytes_t){.len = body.len - 5, .bytes = (char *)body.bytes + 5});
    return strtol(digits, NULL, 10);
}
