/*
 * pending.cpp: transaction-deferred cache writes (see pending.hpp).
 * Backend-local state only; no locks.
 */
#include "pending.hpp"

#include <cstring>

#include "core/ttl.hpp"
#include "invalidation.hpp"
#include "l3_cache.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace tusk {

WriteMark current_write_mark() { return WriteMark{GetCurrentCommandId(false), XactLastRecEnd}; }

namespace {

struct PendingEntry {
    PendingEntry *next;
    uint8_t *key;
    uint32_t key_length;
    uint64_t hash;
    core::Fingerprint fingerprint;
    struct varlena *value;
    uint8_t *validity; /* its validity record (invalidation.hpp) */
    size_t validity_length;
    int64 expires_at;
    SubTransactionId subxact;
    WriteMark mark;   /* when the value was computed */
    uint64 epoch;     /* explicit_epoch(hash) before it was computed */
    bool shared_now;  /* already in L1 and L2 (a reading transaction's fill): only L3 waits */
    bool explicit_value; /* from tusk_cache_set: no query read the data, so it cannot go stale */
    bool dropped;     /* set at PRE_COMMIT: neither written to L3 nor published */
    bool follows_bump; /* scratch of pending_note_invalidation() */
    char *l2_key;     /* nullptr when L2 was off */
    char *l2_value;
    size_t l2_length;
};

/* Newest first; allocated in TopTransactionContext, so it vanishes with the transaction. */
PendingEntry *pending_head = nullptr;

/*
 * How many entries there are per key hash (in TopTransactionContext too):
 * a new key whose hash is absent needs no scan for an older entry, so a
 * transaction that fills many keys is not quadratic.
 */
HTAB *entries_per_hash = nullptr;

void count_hash(uint64 hash, int delta)
{
    if (entries_per_hash == nullptr) {
        if (delta < 0)
            return;
        HASHCTL info;
        info.keysize = sizeof(uint64);
        info.entrysize = sizeof(uint64) + sizeof(int64);
        info.hcxt = TopTransactionContext;
        entries_per_hash = hash_create("tusk pending keys", 256, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    bool found;
    /* Decrements (also during an abort) never allocate. */
    auto *slot = static_cast<char *>(hash_search(entries_per_hash, &hash, delta < 0 ? HASH_FIND : HASH_ENTER, &found));
    if (slot == nullptr)
        return;
    auto *n = reinterpret_cast<int64 *>(slot + sizeof(uint64));
    *n = (found ? *n : 0) + delta;
    if (*n <= 0)
        hash_search(entries_per_hash, &hash, HASH_REMOVE, nullptr);
}

bool hash_present(uint64 hash)
{
    return entries_per_hash != nullptr && hash_search(entries_per_hash, &hash, HASH_FIND, nullptr) != nullptr;
}


/*
 * Set when tusk's own write gave the transaction its id: while the write
 * mark is still the one after that write, the user has not written.
 */
bool own_write_active = false;
WriteMark own_write_mark;

/* Forgets the whole list (the transaction ended; its memory goes with it). */
void reset_pending()
{
    pending_head = nullptr;
    entries_per_hash = nullptr;
    own_write_active = false;
}

bool same_key(const PendingEntry *e, const EncodedKey &key)
{
    return e->hash == key.hash && e->key_length == key.length &&
           std::memcmp(e->key, key.bytes, key.length) == 0;
}

/*
 * True while write_pending_to_l3() has rows that point into the entries:
 * code it runs (a trigger on the L3 table calling tusk_cache_delete) must
 * not free them. Entries are then only marked dropped, and removed after.
 */
bool batch_in_progress = false;

template <typename Pred> uint64 remove_where(Pred pred)
{
    uint64 removed = 0;
    for (PendingEntry **link = &pending_head; *link != nullptr;) {
        PendingEntry *e = *link;
        if (batch_in_progress && pred(e)) {
            if (!e->dropped)
                removed++;
            e->dropped = true;
            link = &e->next;
        } else if (pred(e)) {
            *link = e->next;
            count_hash(e->hash, -1);
            pfree(e->value);
            pfree(e->validity);
            pfree(e->key);
            if (e->l2_key != nullptr) {
                pfree(e->l2_key);
                pfree(e->l2_value);
            }
            pfree(e);
            removed++;
        } else {
            link = &e->next;
        }
    }
    return removed;
}

/*
 * At PRE_COMMIT: drops what the transaction's own later writes made stale
 * and whatever was computed before a delete, invalidate or flush (of any
 * session) that came after it, since it may be what was removed; writes the
 * rest to L3 in one batch, in the committing transaction. A fill that L1
 * and L2 already hold but that is dropped here has its L3 row deleted, so
 * that L3 does not keep an older value than the tiers above.
 */
/* Returns whether L3 rows may have been deleted (then the commit stays synchronous). */
bool write_pending_to_l3()
{
    WriteMark mark = current_write_mark();
    int64 now = GetCurrentTimestamp();
    bool l3_on = l3_writable();
    int count = 0;
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        count++;
    auto *rows = static_cast<L3Row *>(MemoryContextAlloc(TopTransactionContext, sizeof(L3Row) * count));
    auto *stale = static_cast<L3Row *>(MemoryContextAlloc(TopTransactionContext, sizeof(L3Row) * count));
    int n = 0, n_stale = 0;
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next) {
        L3Row row{EncodedKey{e->key, e->key_length, e->hash}, e->fingerprint, e->value, e->expires_at,
                  e->validity, e->validity_length, e->epoch};
        e->dropped = e->epoch != explicit_epoch(e->hash) ||
                     (!e->shared_now && !e->explicit_value && !(e->mark == mark));
        if (e->dropped && e->shared_now)
            stale[n_stale++] = row;
        else if (!e->dropped && e->expires_at > now)
            rows[n++] = row;
    }
    L3BatchResult result = L3BatchResult::Skipped;
    if (l3_on && n + n_stale > 0) {
        /* The statements are over: SPI needs a snapshot of its own here. */
        PushActiveSnapshot(GetTransactionSnapshot());
        batch_in_progress = true;
        PG_TRY();
        {
            result = l3_put_batch(rows, n, stale, n_stale, now);
        }
        PG_FINALLY();
        {
            batch_in_progress = false;
        }
        PG_END_TRY();
        PopActiveSnapshot();
    }
    pfree(rows);
    pfree(stale);
    /* A value whose key was removed meanwhile (its L3 row deleted again) is not for L1 and L2 either. */
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        if (e->epoch != explicit_epoch(e->hash))
            e->dropped = true;
    /* What was dropped is not published to L1 and L2 at commit either. */
    remove_where([](const PendingEntry *e) { return e->dropped; });
    return n_stale > 0 || result == L3BatchResult::Invalidated;
}

/*
 * At COMMIT: the values that are still current go to L1, and to L2 in
 * pipelined round trips (l2_put_many), never one round trip per value, and
 * at most kMaxPublished values or kMaxPublishedBytes of them (the newest
 * values past that are in L1 and L3 only).
 */
constexpr int kMaxPublished = 4096;
constexpr size_t kMaxPublishedBytes = 64 * 1024 * 1024;

void publish_pending()
{
    int64 now = GetCurrentTimestamp();
    int count = 0;
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        count++;
    /* NO_OOM: nothing here may raise. Without the arrays nothing is published (a cache may forget). */
    auto *entries = static_cast<PendingEntry **>(
        MemoryContextAllocExtended(TopTransactionContext, sizeof(PendingEntry *) * (count + 1), MCXT_ALLOC_NO_OOM));
    auto *puts = static_cast<L2Put *>(
        MemoryContextAllocExtended(TopTransactionContext, sizeof(L2Put) * (count + 1), MCXT_ALLOC_NO_OOM));
    auto *published = static_cast<PendingEntry **>(
        MemoryContextAllocExtended(TopTransactionContext, sizeof(PendingEntry *) * (count + 1), MCXT_ALLOC_NO_OOM));
    if (entries == nullptr || puts == nullptr || published == nullptr)
        return;
    int k = 0;
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        entries[k++] = e;
    /* Oldest first, so that when L1 must evict, the newest values are the ones it keeps. */
    int n = 0;
    size_t published_bytes = 0;
    for (int i = count - 1; i >= 0; i--) {
        PendingEntry *e = entries[i];
        /* (a delete of its key since PRE_COMMIT: it may be what that removed) */
        if (e->shared_now || e->expires_at <= now || e->epoch != explicit_epoch(e->hash) ||
            !validity_current(e->validity, e->validity_length))
            continue;
        EncodedKey key{e->key, e->key_length, e->hash};
        l1_put(key, e->fingerprint, e->value, e->validity, e->validity_length, e->expires_at, now, &e->epoch);
        /* Bounded: a commit waits for at most kMaxPublished values' worth of Redis round trips. */
        if (e->l2_key != nullptr && n < kMaxPublished && published_bytes + e->l2_length <= kMaxPublishedBytes) {
            published[n] = e;
            puts[n++] = L2Put{e->l2_key, e->l2_value, e->l2_length, core::remaining_ttl(e->expires_at, now)};
            published_bytes += e->l2_length;
        }
    }
    if (n > 0) {
        int stored = l2_put_many(puts, n);
        /* A delete of a key while its SET was on the way may have run first: take that SET back. */
        for (int i = 0; i < stored; i++)
            if (published[i]->epoch != explicit_epoch(published[i]->hash))
                l2_delete(published[i]->l2_key, false);
    }
}

void on_xact_event(XactEvent event, void *)
{
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            /* Last chance to see the write mark: the commit resets XactLastRecEnd. */
            if (pending_head != nullptr) {
                bool had_xid = TransactionIdIsValid(GetTopTransactionIdIfAny());
                bool deleted = write_pending_to_l3();
                /*
                 * When these L3 rows are all the transaction wrote, a crash
                 * would lose only cache entries: commit without waiting for
                 * the WAL flush or a synchronous standby, as SET LOCAL
                 * synchronous_commit = off would. (Deletes are not such
                 * writes: a lost delete would bring a stale row back.)
                 */
                if (!had_xid && !deleted && TransactionIdIsValid(GetTopTransactionIdIfAny()) &&
                    synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
                    set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
                                      GUC_ACTION_LOCAL, true, 0, false);
            }
            break;
        case XACT_EVENT_COMMIT:
            /* Runs after the commit is durable; nothing here can raise. */
            if (pending_head != nullptr)
                publish_pending();
            reset_pending();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PREPARE:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            reset_pending();
            break;
        default:
            break;
    }
}

void on_subxact_event(SubXactEvent event, SubTransactionId subxact, SubTransactionId, void *)
{
    /* Everything computed in the aborted subtransaction or its children has an id >= its id. */
    if (event == SUBXACT_EVENT_ABORT_SUB && pending_head != nullptr)
        remove_where([subxact](const PendingEntry *e) { return e->subxact >= subxact; });
}

}  // namespace

bool transaction_has_written()
{
    if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
        return false;
    return !(own_write_active && own_write_mark == current_write_mark());
}

TuskWriteToken tusk_write_begin()
{
    WriteMark before = current_write_mark();
    return TuskWriteToken{before.command, before.wal_end, transaction_has_written()};
}

void tusk_write_end(const TuskWriteToken &token)
{
    WriteMark before{token.command, token.wal_end};
    WriteMark after = current_write_mark();
    if (after == before)
        return;
    if (!token.had_written) {
        own_write_active = true;
        own_write_mark = after;
    }
    /* Values that were fresh before tusk's write are as fresh after it. */
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        if (e->mark == before)
            e->mark = after;
}

void pending_register_callbacks()
{
    RegisterXactCallback(on_xact_event, nullptr);
    RegisterSubXactCallback(on_subxact_event, nullptr);
}

namespace {

PendingEntry *new_entry(const EncodedKey &key, const core::Fingerprint &fingerprint,
                        const struct varlena *value, const uint8_t *validity, size_t validity_length,
                        int64 expires_at, uint64 epoch, bool shared_now, bool explicit_value,
                        const WriteMark &computed_at)
{
    if (hash_present(key.hash))
        pending_forget(key);
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    auto *e = static_cast<PendingEntry *>(palloc(sizeof(PendingEntry)));
    e->key = static_cast<uint8_t *>(palloc(key.length));
    std::memcpy(e->key, key.bytes, key.length);
    e->key_length = key.length;
    e->hash = key.hash;
    e->fingerprint = fingerprint;
    Size size = VARSIZE_ANY(value);
    e->value = static_cast<struct varlena *>(palloc(size));
    std::memcpy(e->value, value, size);
    e->validity = static_cast<uint8_t *>(palloc(validity_length + 1));
    std::memcpy(e->validity, validity, validity_length);
    e->validity_length = validity_length;
    e->expires_at = expires_at;
    e->subxact = GetCurrentSubTransactionId();
    e->mark = computed_at;
    e->epoch = epoch;
    e->shared_now = shared_now;
    e->explicit_value = explicit_value;
    e->dropped = false;
    e->l2_key = nullptr;
    e->l2_value = nullptr;
    e->l2_length = 0;
    e->next = pending_head;
    pending_head = e;
    MemoryContextSwitchTo(old);
    count_hash(key.hash, 1);
    return e;
}

}  // namespace

void pending_put_l3(const EncodedKey &key, const core::Fingerprint &fingerprint,
                    const struct varlena *value, const uint8_t *validity, size_t validity_length,
                    int64 expires_at, uint64 epoch, bool explicit_value)
{
    new_entry(key, fingerprint, value, validity, validity_length, expires_at, epoch, true, explicit_value,
              current_write_mark());
}

void pending_note_invalidation(const uint64_t *key_hash)
{
    /*
     * The caller forgot its own entries that the invalidation matched; the
     * rest stay valid: those whose epoch the bump moves move with it (unless
     * another session's bump came in between: then they are dropped).
     */
    /* (not during the commit-time batch, whose rows carry the epochs they had: they are dropped instead) */
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        e->follows_bump = !batch_in_progress && epoch_bump_concerns(key_hash, e->hash) &&
                          e->epoch == explicit_epoch(e->hash);
    bump_explicit_epoch(key_hash);
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next)
        if (e->follows_bump)
            e->epoch++;
}

void pending_put(const EncodedKey &key, const core::Fingerprint &fingerprint,
                 const struct varlena *value, const uint8_t *validity, size_t validity_length,
                 int64 expires_at, uint64 epoch, bool explicit_value, const WriteMark &computed_at,
                 const char *l2_key, const char *l2_value, size_t l2_length)
{
    PendingEntry *e = new_entry(key, fingerprint, value, validity, validity_length, expires_at, epoch, false,
                                explicit_value, computed_at);
    if (l2_key == nullptr)
        return;
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    e->l2_key = pstrdup(l2_key);
    e->l2_length = l2_length;
    e->l2_value = static_cast<char *>(palloc(l2_length + 1));
    std::memcpy(e->l2_value, l2_value, l2_length);
    e->l2_value[l2_length] = '\0';
    MemoryContextSwitchTo(old);
}

struct varlena *pending_get(const EncodedKey &key, const core::Fingerprint *want, int64 now)
{
    if (!hash_present(key.hash))
        return nullptr;
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next) {
        if (e->shared_now || !same_key(e, key))
            continue;
        if (!e->explicit_value && !(e->mark == current_write_mark())) {
            /* The transaction wrote after computing it: stale, also for itself. */
            pending_forget(key);
            return nullptr;
        }
        if (e->expires_at <= now || (want != nullptr && *want != e->fingerprint))
            return nullptr;
        if (!validity_current(e->validity, e->validity_length) || e->epoch != explicit_epoch(e->hash)) {
            /* Another transaction changed what it read and committed, or deleted the key. */
            pending_forget(key);
            return nullptr;
        }
        fill_note_value(e->validity, e->validity_length);
        Size size = VARSIZE_ANY(e->value);
        auto *copy = static_cast<struct varlena *>(palloc(size));
        std::memcpy(copy, e->value, size);
        return copy;
    }
    return nullptr;
}

bool pending_forget(const EncodedKey &key)
{
    if (pending_head == nullptr || !hash_present(key.hash))
        return false;
    return remove_where([&key](const PendingEntry *e) { return same_key(e, key); }) > 0;
}

uint64 pending_forget_prefix(const void *prefix, uint32 length)
{
    if (pending_head == nullptr)
        return 0;
    /* Values also in L1 and L2 already are counted there, not here. */
    uint64 only_here = 0;
    remove_where([prefix, length, &only_here](const PendingEntry *e) {
        bool match = length == 0 || (e->key_length >= length && std::memcmp(e->key, prefix, length) == 0);
        if (match && !e->shared_now)
            only_here++;
        return match;
    });
    return only_here;
}

}  // namespace tusk
