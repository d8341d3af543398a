/*
 * pending.hpp: cache writes of a transaction that has written data itself.
 *
 * A result computed by a transaction that holds a transaction id (it wrote,
 * or locked rows) may contain its own uncommitted writes. Such results are
 * served back to that transaction from here, and enter the shared tiers only
 * when it commits; a rollback (of the transaction, or of the subtransaction
 * that computed them) drops them. PREPARE TRANSACTION drops them too.
 *
 * Each value remembers the transaction's write mark (command id and the end
 * of its last WAL record) from before it was computed (for a streamed
 * value, when its stream opened). If the transaction writes
 * again afterwards the value may be stale: it is no longer served, not even
 * to the transaction itself, and never published. Writes tusk makes itself
 * (deletes from the L3 table) are bracketed by tusk_write_begin/end and do not count:
 * they neither make the transaction "written" nor make pending values stale.
 *
 * At PRE_COMMIT the values that are still fresh are written to L3 (in the
 * committing transaction); at COMMIT they go to L1 and L2. A transaction that
 * has not written stores its values in L1 and L2 at once, and queues them
 * here for L3 only (pending_put_l3). A value computed before any session's
 * delete, invalidate or flush that happened before PRE_COMMIT is dropped.
 * Backend-local; lives in TopTransactionContext.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "access/xlogdefs.h"
}

#include "l1_cache.hpp"
#include "l2_cache.hpp"

namespace tusk {

/* Changes whenever the transaction writes: a new command id, or new WAL. */
struct WriteMark {
    CommandId command;
    XLogRecPtr wal_end;
    bool operator==(const WriteMark &o) const { return command == o.command && wal_end == o.wal_end; }
};

WriteMark current_write_mark();

/*
 * True when the current transaction has written data (holds a transaction
 * id, and has written since tusk's own last write, if tusk assigned it).
 */
bool transaction_has_written();

/* The transaction's state before a write of tusk's own (see tusk_write_begin). */
struct TuskWriteToken {
    CommandId command;
    XLogRecPtr wal_end;
    bool had_written;
};

/*
 * Brackets a write tusk makes to the L3 table during a transaction (a
 * delete), so that it does not count as the user's.
 */
TuskWriteToken tusk_write_begin();
void tusk_write_end(const TuskWriteToken &token);

void pending_register_callbacks();

/*
 * Keeps value (copied) for key until commit, replacing any earlier pending
 * value. epoch is explicit_epoch(key.hash) from before the value was
 * computed; explicit_value says it came from tusk_cache_set (no query, so
 * the transaction's later writes do not make it stale). l2_key and l2_value
 * (its encoded form) are given when L2 is on: they are made now, because
 * the commit callback cannot read the catalogs.
 */
void pending_put(const EncodedKey &key, const core::Fingerprint &fingerprint,
                 const struct varlena *value, const uint8_t *validity, size_t validity_length,
                 int64 expires_at, uint64 epoch, bool explicit_value, const WriteMark &computed_at,
                 const char *l2_key, const char *l2_value, size_t l2_length);

/*
 * Queues a value that a reading transaction already stored in L1 and L2
 * for L3, written when the transaction commits (never served from here).
 */
void pending_put_l3(const EncodedKey &key, const core::Fingerprint &fingerprint,
                    const struct varlena *value, const uint8_t *validity, size_t validity_length,
                    int64 expires_at, uint64 epoch, bool explicit_value);

/*
 * Call after a delete, invalidate or flush (and after forgetting the
 * matching pending values): other sessions' values computed before it
 * are then not written to L3 at their commit.
 */
void pending_note_invalidation(const uint64_t *key_hash);

/*
 * A palloc'd copy of the pending value, or nullptr. want == nullptr accepts
 * any fingerprint. A value whose dependencies changed since it was computed
 * (another transaction's commit) is forgotten instead.
 */
struct varlena *pending_get(const EncodedKey &key, const core::Fingerprint *want, int64 now);

/*
 * Forgets pending values for key, or for every key starting with prefix
 * (returning how many of them were in no shared tier yet).
 */
bool pending_forget(const EncodedKey &key);
uint64 pending_forget_prefix(const void *prefix, uint32 length);

}  // namespace tusk
