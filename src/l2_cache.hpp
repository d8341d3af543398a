/*
 * l2_cache.hpp: the L2 tier: Redis, shared by every server that points at it.
 * See l2_cache.cpp for the shared state and its locking rules.
 *
 * Every function here degrades instead of failing: Redis down, hung, slow or
 * answering garbage makes a lookup a miss and a store a no-op, counted in
 * the l2 row's errors. Only a query cancel (or backend termination) that
 * arrives while waiting for Redis raises, as it would anywhere else.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/jsonb.h"
}

#include "core/l1_store.hpp"

namespace tusk {

struct L2Stats {
    uint64 hits;
    uint64 misses;
    uint64 sets;
    uint64 errors;
};

void l2_define_gucs();
void l2_request_shmem();
void l2_startup_shmem();

/* True when tusk.redis_host is set (and tusk is preloaded). */
bool l2_enabled();

/* The Redis key of a user key under the current database and role (palloc'd). */
char *l2_key_for(const char *user_key, size_t length);

/* The same for a prefix of user keys, and for every tusk entry (tusk.redis_prefix). */
char *l2_prefix_for(const char *user_prefix, size_t length);
char *l2_prefix_of_everything();

/*
 * A palloc'd jsonb for key, or nullptr. want == nullptr accepts any
 * fingerprint. *expires_at is set from the entry's remaining TTL, *found
 * to the fingerprint it was stored with, and *validity / *validity_length
 * to its validity record (palloc'd; length 0 when it has none).
 */
Jsonb *l2_get(const char *key, const core::Fingerprint *want, int64 now, int64 *expires_at,
             core::Fingerprint *found, uint8_t **validity, size_t *validity_length);

/* The stored form of a value (palloc'd JSON text), made while a transaction is open. */
char *l2_encode(const core::Fingerprint &fingerprint, const uint8_t *validity, size_t validity_length,
                Jsonb *value, size_t *length);

/* One SET of l2_put_many(). */
struct L2Put {
    const char *key;
    const char *encoded;
    size_t length;
    int64 ttl;
};

/*
 * Stores many encoded values in pipelined round trips of up to 256 SETs
 * each; never raises (for the commit callback). Stops at the first
 * failure or cancel. Returns how many were stored.
 */
int l2_put_many(const L2Put *puts, int count);

/*
 * Stores an encoded value with a TTL. With may_raise false (the commit
 * callback) it never raises: a cancel just ends the attempt.
 */
bool l2_put_encoded(const char *key, const char *encoded, size_t length, int64 ttl,
                    bool may_raise = true);

/* 1 if Redis removed key, 0 if it was not there, -1 if Redis could not be asked. */
int l2_delete(const char *key, bool may_raise = true);

/*
 * Deletes every key starting with prefix (SCAN MATCH and UNLINK, never
 * KEYS); returns how many, or -1 if Redis could not be asked to finish.
 */
int64 l2_delete_prefix(const char *prefix);

void l2_stats(L2Stats &out);
void l2_reset_counters();

}  // namespace tusk
