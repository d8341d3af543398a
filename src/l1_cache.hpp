/*
 * l1_cache.hpp: the L1 tier as PostgreSQL sees it: the core L1Store placed in
 * shared memory at server start, one LWLock per partition, and the GUCs that
 * size it. See l1_cache.cpp for the locking rules.
 */
#pragma once

extern "C" {
#include "postgres.h"
}

#include "core/l1_store.hpp"

namespace tusk {

/* A key ready for any tier: the encoded bytes (scope + user key) and their hash. */
struct EncodedKey {
    uint8_t *bytes; /* palloc'd */
    uint32_t length;
    uint64_t hash;
    core::KeyRef ref() const { return core::KeyRef{bytes, length, hash}; }
};

void l1_define_gucs();
void l1_request_shmem();
void l1_startup_shmem();

/* True when L1 has shared memory (preloaded and tusk.l1_size > 0). */
bool l1_available();

/*
 * Looks the key up; on a hit returns a palloc'd copy of the stored value
 * (a varlena) and sets *expires_at and *validity / *validity_length (the
 * value's validity record, which follows the value in the same copy).
 * want == nullptr accepts any fingerprint. An expired entry found here is
 * removed. An entry that is no longer current (validity_current()) is a
 * miss, counted as one, and removed.
 */
struct varlena *l1_get(const EncodedKey &key, const core::Fingerprint *want, int64 now,
                       int64 *expires_at, const uint8_t **validity, size_t *validity_length);

/*
 * Stores a varlena value and its validity record; false when L1 is off or
 * the entry is over tusk.l1_max_entry_size (then any older entry for the
 * key is removed). With expected_epoch, stores only if explicit_epoch() is
 * still that value, checked under the partition lock (so a delete that
 * bumped the epoch before taking that lock removes what was stored).
 */
bool l1_put(const EncodedKey &key, const core::Fingerprint &fingerprint,
            const struct varlena *value, const uint8_t *validity, size_t validity_length,
            int64 expires_at, int64 now, const uint64 *expected_epoch = nullptr);

/* Whether l1_put() would keep an entry of this size (L1 on, within tusk.l1_max_entry_size). */
bool l1_accepts(size_t key_length, size_t value_length);

bool l1_delete(const EncodedKey &key);

/* Removes entries whose encoded key starts with prefix (everything for length 0). */
uint64 l1_delete_prefix(const void *prefix, uint32 length);

void l1_stats(core::L1Stats &out);
void l1_reset_counters();

}  // namespace tusk
