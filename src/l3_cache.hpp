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

/* True when tusk.l3_enabled is on and this database has the table. */
bool l3_enabled();

/* True when L3 is enabled and this transaction may write it (not read-only, not a standby). */
bool l3_writable();

/*
 * Looks key (an encoded key: the scope gives the role) up. A palloc'd value
 * or nullptr; want == nullptr accepts any fingerprint. Expired rows are
 * never returned. Sets *expires_at and *found on a hit.
 */
Jsonb *l3_get(const EncodedKey &key, const core::Fingerprint *want, int64 now, int64 *expires_at,
              core::Fingerprint *found);

/*
 * Writes key's value (insert or replace) in the current transaction, and
 * removes a few expired rows while at it. Never waits for another
 * transaction: if one is writing the same key, this write is skipped.
 * False when nothing was written (skipped, or an error, counted and
 * logged); a query cancel still raises.
 */
bool l3_put(const EncodedKey &key, const core::Fingerprint &fingerprint, const struct varlena *value,
            int64 expires_at, int64 now);

/*
 * Removes key, waiting for a transaction that is writing it. 1 if a row was
 * removed, 0 if there was none, -1 if L3 could not be changed (*why says why).
 */
int l3_delete(const EncodedKey &key, L3Refusal *why);

/* Removes the keys of prefix's role that start with prefix's user part; -1 as above. */
int64 l3_delete_prefix(const EncodedKey &prefix, L3Refusal *why);

/* Removes every row of the table (every role); -1 as above. */
int64 l3_delete_all(L3Refusal *why);

/*
 * Counters, and the table's unexpired rows and total size (*entries and
 * *bytes are -1 when the table is not there).
 */
void l3_stats(L3Stats &out, int64 *entries, int64 *bytes);
void l3_reset_counters();

}  // namespace tusk
