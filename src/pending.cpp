/*
 * pending.cpp: transaction-deferred cache writes (see pending.hpp).
 * Backend-local state only; no locks.
 */
#include "pending.hpp"

#include <cstring>

#include "core/ttl.hpp"
#include "l3_cache.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace tusk {

namespace {

/* Changes whenever the transaction writes: a new command id, or new WAL. */
struct WriteMark {
    CommandId command;
    XLogRecPtr wal_end;
    bool operator==(const WriteMark &o) const { return command == o.command && wal_end == o.wal_end; }
};

WriteMark current_write_mark() { return WriteMark{GetCurrentCommandId(false), XactLastRecEnd}; }

struct PendingEntry {
    PendingEntry *next;
    uint8_t *key;
    uint32_t key_length;
    uint64_t hash;
    core::Fingerprint fingerprint;
    struct varlena *value;
    int64 expires_at;
    SubTransactionId subxact;
    WriteMark mark;   /* when the value was computed */
    char *l2_key;     /* nullptr when L2 was off */
    char *l2_value;
    size_t l2_length;
};

/* Newest first; allocated in TopTransactionContext, so it vanishes with the transaction. */
PendingEntry *pending_head = nullptr;

/*
 * Set when tusk's own write gave the transaction its id: while the write
 * mark is still the one after that write, the user has not written.
 */
bool own_write_active = false;
WriteMark own_write_mark;

bool same_key(const PendingEntry *e, const EncodedKey &key)
{
    return e->hash == key.hash && e->key_length == key.length &&
           std::memcmp(e->key, key.bytes, key.length) == 0;
}

template <typename Pred> uint64 remove_where(Pred pred)
{
    uint64 removed = 0;
    for (PendingEntry **link = &pending_head; *link != nullptr;) {
        PendingEntry *e = *link;
        if (pred(e)) {
            *link = e->next;
            pfree(e->value);
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

/* Writes the fresh pending values to L3, in the committing transaction. */
void write_pending_to_l3()
{
    if (!l3_writable())
        return;
    int64 now = GetCurrentTimestamp();
    /* The statements are over: SPI needs a snapshot of its own here. */
    PushActiveSnapshot(GetTransactionSnapshot());
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next) {
        if (e->expires_at <= now)
            continue;
        EncodedKey key{e->key, e->key_length, e->hash};
        l3_put(key, e->fingerprint, e->value, e->expires_at, now);
    }
    PopActiveSnapshot();
}

void publish_pending()
{
    int64 now = GetCurrentTimestamp();
    bool l2_usable = true; /* after one failure (or a cancel) the rest skip L2 */
    /* Oldest first would be the same: keys are unique in the list. */
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next) {
        if (e->expires_at <= now)
            continue;
        EncodedKey key{e->key, e->key_length, e->hash};
        l1_put(key, e->fingerprint, e->value, e->expires_at, now);
        if (e->l2_key != nullptr && l2_usable)
            l2_usable = l2_put_encoded(e->l2_key, e->l2_value, e->l2_length,
                                       core::remaining_ttl(e->expires_at, now), false);
    }
}

void on_xact_event(XactEvent event, void *)
{
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            /* Last chance to see the write mark: the commit resets XactLastRecEnd. */
            if (pending_head != nullptr) {
                WriteMark now = current_write_mark();
                remove_where([&now](const PendingEntry *e) { return !(e->mark == now); });
                write_pending_to_l3();
            }
            /*
             * When tusk's own L3 rows are all this transaction wrote, losing
             * them in a crash loses only cache entries: commit without
             * waiting for the WAL flush (or a synchronous standby), as
             * SET LOCAL synchronous_commit = off would.
             */
            if (own_write_active && !transaction_has_written() && synchronous_commit > SYNCHRONOUS_COMMIT_OFF)
                set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
                                  GUC_ACTION_LOCAL, true, 0, false);
            break;
        case XACT_EVENT_COMMIT:
            /* Runs after the commit is durable; nothing here can raise. */
            if (pending_head != nullptr)
                publish_pending();
            pending_head = nullptr;
            own_write_active = false;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PREPARE:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            pending_head = nullptr;
            own_write_active = false;
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

void pending_put(const EncodedKey &key, const core::Fingerprint &fingerprint,
                 const struct varlena *value, int64 expires_at, const char *l2_key,
                 const char *l2_value, size_t l2_length)
{
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
    e->expires_at = expires_at;
    e->subxact = GetCurrentSubTransactionId();
    e->mark = current_write_mark();
    e->l2_key = l2_key != nullptr ? pstrdup(l2_key) : nullptr;
    e->l2_value = nullptr;
    e->l2_length = l2_length;
    if (l2_key != nullptr) {
        e->l2_value = static_cast<char *>(palloc(l2_length + 1));
        std::memcpy(e->l2_value, l2_value, l2_length);
        e->l2_value[l2_length] = '\0';
    }
    e->next = pending_head;
    pending_head = e;
    MemoryContextSwitchTo(old);
}

struct varlena *pending_get(const EncodedKey &key, const core::Fingerprint *want, int64 now)
{
    for (PendingEntry *e = pending_head; e != nullptr; e = e->next) {
        if (!same_key(e, key))
            continue;
        if (!(e->mark == current_write_mark())) {
            /* The transaction wrote after computing it: stale, also for itself. */
            pending_forget(key);
            return nullptr;
        }
        if (e->expires_at <= now || (want != nullptr && *want != e->fingerprint))
            return nullptr;
        Size size = VARSIZE_ANY(e->value);
        auto *copy = static_cast<struct varlena *>(palloc(size));
        std::memcpy(copy, e->value, size);
        return copy;
    }
    return nullptr;
}

bool pending_forget(const EncodedKey &key)
{
    if (pending_head == nullptr)
        return false;
    return remove_where([&key](const PendingEntry *e) { return same_key(e, key); }) > 0;
}

uint64 pending_forget_prefix(const void *prefix, uint32 length)
{
    if (pending_head == nullptr)
        return 0;
    return remove_where([prefix, length](const PendingEntry *e) {
        return e->key_length >= length && std::memcmp(e->key, prefix, length) == 0;
    });
}

}  // namespace tusk
