/*
 * l3_cache.hpp: the L3 tier: the table tusk_cache_l3 of the database the
 * caller is connected to. It survives restarts and is replicated to hot
 * standbys (which read it but cannot write it). See l3_cache.cpp for how
 * it is accessed and why a fill never waits for another transaction.
 *
 * Rows are written in the caller's transaction: they appear when it commits
 * and vanish if it rolls back. Functions here raise PostgreSQL errors
 * directly (they hold no C++ objects); call them from plain frames.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/jsonb.h"
}

#include "core/l1_store.hpp"
#include "l1_cache.hpp"

namespace tusk {

struct L3Stats {
    uint64 hits;
    uint64 misses;
    uint64 sets;
    uint64 expirations; /* expired rows removed */
    uint64 errors;      /* writes that failed (other than waiting for a lock) */
};

/* Why a delete did not reach L3. */
enum class L3Refusal { None, Disabled, ReadOnly, Standby };

void l3_define_gucs();
void l3_request_shmem();
void l3_startup_shmem();

/* The schema the extension `extension` (tusk) was created in. */
Oid extension_schema_of(Oid extension);

/* True when tusk.l3_enabled is on and this database has the table. */
bool l3_enabled();

/*
 * True when L3 is enabled and this transaction may fill it (not read-only,
 * not a standby, not REPEATABLE READ or SERIALIZABLE).
 */
bool l3_writable();

/*
 * Looks key (an encoded key: the scope gives the role) up. A palloc'd value
 * or nullptr; want == nullptr accepts any fingerprint. Expired rows are
 * never returned. *validity is the row's validity record (palloc'd; none
 * for a row without one). Sets *expires_at and *found on a hit, and *settled to
 * false when some transaction is deleting, replacing or locking the row
 * (then it must not be copied up: it may be on its way out).
 */
Jsonb *l3_get(const EncodedKey &key, const core::Fingerprint *want, int64 now, int64 *expires_at,
              core::Fingerprint *found, bool *settled, uint8_t **validity, size_t *validity_length);

/* One row of a commit-time batch. */
struct L3Row {
    EncodedKey key;
    core::Fingerprint fingerprint;
    const struct varlena *value;
    int64 expires_at;
    const uint8_t *validity; /* its validity record (invalidation.hpp) */
    size_t validity_length;
    uint64_t epoch; /* explicit_epoch(key.hash) from before the value was computed */
};

enum class L3BatchResult {
    Skipped,     /* L3 off, not writable here, or nothing to do */
    Written,     /* the rows are written and the stale keys' rows deleted */
    Invalidated, /* a delete, invalidate or flush came in between: the rows' keys were deleted instead */
    Failed,      /* nothing changed (an error, counted and logged, or a lock wait given up) */
};

/*
 * Writes the rows (insert or replace; keys must be distinct) and deletes
 * the rows of the stale keys, in the current transaction, a statement per
 * chunk, and removes expired rows while at it; for PRE_COMMIT (pending.cpp)
 * and the L3 writer (l3_queue.cpp). A row whose key's explicit_epoch() is
 * no longer its epoch after the write is deleted again (Invalidated: at
 * least one was). Never waits long (see l3_cache.cpp). A query cancel
 * still raises.
 */
L3BatchResult l3_put_batch(const L3Row *rows, int count, const L3Row *stale, int stale_count, int64 now);

/*
 * Removes key (waiting, as DELETE does, for a transaction that holds its
 * row). 1 if a row was removed, 0 if there was none, -1 if L3 could not be
 * changed (*why says why).
 */
int l3_delete(const EncodedKey &key, L3Refusal *why);

/* Removes the keys of prefix's role that start with prefix's user part; -1 as above. */
int64 l3_delete_prefix(const EncodedKey &prefix, L3Refusal *why);

/* Removes every row of the table (every role); -1 as above. */
int64 l3_delete_all(L3Refusal *why);

/*
 * Removes up to `limit` expired rows that no other transaction holds (the
 * background worker's sweep); how many, or -1 when L3 cannot be written here.
 */
int64 l3_sweep_expired(int64 now, int64 limit);

/*
 * Counters, and the table's unexpired rows and total size (*entries and
 * *bytes are -1 when the table is not there).
 */
void l3_stats(L3Stats &out, int64 *entries, int64 *bytes);

/* A fill's L3 row that the write-behind queue had no room for (counted in errors). */
void l3_count_dropped();
void l3_reset_counters();

}  // namespace tusk
