/*
 * l1_cache.cpp: the L1 tier in shared memory.
 *
 * Shared state: one L1Store (src/core/l1_store.hpp) of tusk.l1_size bytes,
 * requested in shmem_request_hook and laid out once in shmem_startup_hook,
 * plus a named LWLock tranche "tusk_l1" with one lock per store partition.
 *
 * Locking rules:
 *   - A lookup takes its partition's lock in LW_SHARED mode: readers of a
 *     partition run concurrently, readers of different partitions never meet.
 *   - put, delete, expired-entry removal take the partition lock LW_EXCLUSIVE.
 *   - delete-by-prefix and flush take each partition's lock exclusively in
 *     turn, never two at once.
 *   - Counters are atomics in the store and are read without a lock.
 *   - While a partition lock is held nothing here can raise an error: the
 *     store never throws, and copies are allocated with MCXT_ALLOC_NO_OOM.
 */
#include "l1_cache.hpp"

#include "invalidation.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
}

namespace tusk {

namespace {

constexpr uint32_t kPartitions = 32;
constexpr const char *kTranche = "tusk_l1";

int l1_size_kb = 64 * 1024;       /* tusk.l1_size */
int l1_max_entry_size_kb = 1024;  /* tusk.l1_max_entry_size */

core::L1Store *store = nullptr;
LWLockPadded *locks = nullptr;

Size shmem_bytes()
{
    return l1_size_kb <= 0 ? 0 : Size(l1_size_kb) * 1024;
}

LWLock *lock_for(uint32_t partition) { return &locks[partition].lock; }

void *allocate_no_oom(void *context, size_t length)
{
    return MemoryContextAllocExtended(static_cast<MemoryContext>(context), length,
                                      MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
}

}  // namespace

void l1_define_gucs()
{
    /* PostgreSQL ends a backend that creates a PGC_POSTMASTER variable outside preloading. */
    if (process_shared_preload_libraries_in_progress)
        DefineCustomIntVariable("tusk.l1_size",
                            "Shared memory for the L1 cache (0 turns L1 off).",
                                "Set at server start; split into 32 partitions.", &l1_size_kb,
                                64 * 1024, 0, INT_MAX / 2, PGC_POSTMASTER, GUC_UNIT_KB, nullptr,
                                nullptr, nullptr);
    DefineCustomIntVariable("tusk.l1_max_entry_size",
                            "Largest entry (key and value) that L1 stores.",
                            "Larger results are still returned, just not kept in L1.",
                            &l1_max_entry_size_kb, 1024, 1, INT_MAX / 2, PGC_SIGHUP, GUC_UNIT_KB,
                            nullptr, nullptr, nullptr);
}

void l1_request_shmem()
{
    Size bytes = shmem_bytes();
    if (bytes == 0)
        return;
    if (bytes < core::L1Store::min_size(kPartitions))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("tusk.l1_size must be 0 or at least %zu kB",
                               (core::L1Store::min_size(kPartitions) + 1023) / 1024)));
    RequestAddinShmemSpace(bytes);
    RequestNamedLWLockTranche(kTranche, kPartitions);
}

void l1_startup_shmem()
{
    Size bytes = shmem_bytes();
    if (bytes == 0)
        return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    void *memory = ShmemInitStruct("tusk l1 cache", bytes, &found);
    store = found ? core::L1Store::attach(memory)
                  : core::L1Store::format(memory, bytes, kPartitions);
    locks = GetNamedLWLockTranche(kTranche);
    LWLockRelease(AddinShmemInitLock);
    if (store == nullptr)
        ereport(ERROR, (errmsg("tusk: could not set up the L1 cache in shared memory")));
}

bool l1_available() { return store != nullptr; }

struct varlena *l1_get(const EncodedKey &key, const core::Fingerprint *want, int64 now,
                       int64 *expires_at, const uint8_t **validity, size_t *validity_length)
{
    if (store == nullptr)
        return nullptr;
    core::KeyRef ref = key.ref();
    uint32_t partition = store->partition_of(key.hash);
    core::ValueSink sink{allocate_no_oom, CurrentMemoryContext};

    LWLockAcquire(lock_for(partition), LW_SHARED);
    core::LookupStatus status = store->lookup(ref, now, want, sink);
    LWLockRelease(lock_for(partition));

    if (status == core::LookupStatus::Expired) {
        LWLockAcquire(lock_for(partition), LW_EXCLUSIVE);
        store->erase_expired(ref, now);
        LWLockRelease(lock_for(partition));
    }
    if (status != core::LookupStatus::Hit)
        return nullptr;
    auto *value = static_cast<struct varlena *>(sink.value);
    size_t value_length = VARSIZE_ANY(value);
    if (value_length > sink.length) {
        pfree(value); /* cannot happen: l1_put stores the value whole */
        return nullptr;
    }
    if (expires_at != nullptr)
        *expires_at = sink.expires_at;
    *validity = reinterpret_cast<const uint8_t *>(value) + value_length;
    *validity_length = sink.length - value_length;
    if (!validity_current(*validity, *validity_length)) {
        /* Something it read has changed since: a miss, and the entry goes. */
        store->count_stale_hit(key.hash);
        LWLockAcquire(lock_for(partition), LW_EXCLUSIVE);
        store->erase(ref);
        LWLockRelease(lock_for(partition));
        pfree(value);
        return nullptr;
    }
    return value;
}

bool l1_accepts(size_t key_length, size_t value_length)
{
    return store != nullptr && key_length + value_length <= size_t(l1_max_entry_size_kb) * 1024;
}

bool l1_put(const EncodedKey &key, const core::Fingerprint &fingerprint,
            const struct varlena *value, const uint8_t *validity, size_t validity_length,
            int64 expires_at, int64 now, const uint64 *expected_epoch)
{
    size_t value_length = VARSIZE_ANY(value);
    size_t stored_length = value_length + validity_length;
    if (!l1_accepts(key.length, stored_length)) {
        l1_delete(key);
        return false;
    }
    /* The value and its validity record, one block of bytes (made before the lock is taken; never raises). */
    auto *stored = static_cast<char *>(allocate_no_oom(CurrentMemoryContext, stored_length));
    if (stored == nullptr) {
        l1_delete(key);
        return false;
    }
    memcpy(stored, value, value_length);
    if (validity_length > 0)
        memcpy(stored + value_length, validity, validity_length);
    uint32_t partition = store->partition_of(key.hash);
    LWLockAcquire(lock_for(partition), LW_EXCLUSIVE);
    bool stored_it = false;
    if (expected_epoch == nullptr || explicit_epoch(key.hash) == *expected_epoch)
        stored_it = store->put(key.ref(), fingerprint, stored, stored_length, expires_at, now) ==
                    core::PutStatus::Stored;
    LWLockRelease(lock_for(partition));
    pfree(stored);
    return stored_it;
}

bool l1_delete(const EncodedKey &key)
{
    if (store == nullptr)
        return false;
    uint32_t partition = store->partition_of(key.hash);
    LWLockAcquire(lock_for(partition), LW_EXCLUSIVE);
    bool removed = store->erase(key.ref());
    LWLockRelease(lock_for(partition));
    return removed;
}

uint64 l1_delete_prefix(const void *prefix, uint32 length)
{
    if (store == nullptr)
        return 0;
    uint64 removed = 0;
    for (uint32_t p = 0; p < store->partition_count(); p++) {
        LWLockAcquire(lock_for(p), LW_EXCLUSIVE);
        removed += store->erase_prefix(p, prefix, length);
        LWLockRelease(lock_for(p));
    }
    return removed;
}

void l1_stats(core::L1Stats &out)
{
    if (store == nullptr) {
        out = core::L1Stats{};
        return;
    }
    store->stats(out);
}

void l1_reset_counters()
{
    if (store != nullptr)
        store->reset_counters();
}

}  // namespace tusk
