/*
 * l3_queue.hpp: L3 writes of reading transactions, behind their back.
 *
 * A fill in a transaction that has not written is served from L1 and L2 at
 * once; its L3 row is not written by that transaction (which would then
 * take a transaction id, and keep every fill's copy and WAL until it
 * commits) but queued in shared memory, and written by a "tusk L3 writer"
 * background worker of the fill's database, in its own transactions. The
 * writer starts when its database's first fill is queued and stops after a
 * while without work. Rows carry their validity record, so a row written
 * late is never served stale; a row whose fill began before a delete,
 * invalidate or flush is dropped, or deleted again (as at commit).
 *
 * When a fill cannot be queued (tusk.l3_queue_size = 0, a value over a
 * quarter of a database's share of the queue, no background worker slot)
 * it goes the old way, written by the filling transaction when it commits.
 * A full queue drops the fill's L3 row (counted in the l3 errors). See
 * l3_queue.cpp for the shared state and its locking rules.
 */
#pragma once

extern "C" {
#include "postgres.h"
}

#include "core/l1_store.hpp"
#include "l1_cache.hpp"

namespace tusk {

void l3_queue_define_gucs();
void l3_queue_request_shmem();
void l3_queue_startup_shmem();

/*
 * Queues a reading transaction's fill for L3. True when the queue took it
 * (or dropped it, being full); false when the caller must write it itself.
 */
bool l3_queue_put(const EncodedKey &key, const core::Fingerprint &fingerprint, const struct varlena *value,
                  const uint8_t *validity, size_t validity_length, int64 expires_at, uint64 epoch);

/*
 * Waits until every fill this database queued before the call is written
 * (or dropped), at most timeout_ms; false on timeout. A cancel ends it.
 */
bool l3_queue_wait(int64 timeout_ms);

}  // namespace tusk
