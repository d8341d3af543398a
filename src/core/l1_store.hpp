/*
 * l1_store.hpp: the L1 cache's data structure, laid out in one raw memory block.
 *
 * The block is split into a fixed number of partitions. Each partition is a
 * self-contained hash table with its own slots (entry headers), a chained hash
 * index, and a pool of fixed-size data blocks that hold "key bytes followed by
 * value bytes" as a linked chain. Nothing in the block is a pointer: everything
 * is an offset or an index, so every process may map it at any address.
 *
 * Why fixed-size blocks: any free block serves any entry, so churn of entries
 * of every size never leaves free space that is too scattered to use (no
 * external fragmentation); the waste is under one block per entry.
 *
 * Eviction is CLOCK (second chance) over the slots of a partition: a hit only
 * sets the slot's reference bit with an atomic store, so readers never modify
 * a list and can all run under a shared lock, while a true LRU would relink a
 * list on every hit and force every reader to take the lock exclusively.
 * Expired entries met by the clock hand are reclaimed first and counted as
 * expirations, not evictions.
 *
 * Locking rules (the caller provides the locks, one reader-writer lock per
 * partition, indexed by partition_of(hash)):
 *   - lookup() needs the partition's lock in shared mode (or exclusive).
 *   - put(), erase(), erase_expired(), erase_prefix() need it in exclusive mode.
 *   - stats() and reset_counters() need no lock: counters are atomics, read
 *     and written with relaxed ordering (a snapshot may be slightly torn
 *     between counters, never within one).
 *   - format() runs once, before any other process attaches.
 *
 * This file must not include any PostgreSQL header.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace tusk::core {

/* 128-bit fingerprint of what produced a value (query text, params, ...). */
struct Fingerprint {
    uint64_t lo = 0;
    uint64_t hi = 0;
    bool operator==(const Fingerprint &o) const { return lo == o.lo && hi == o.hi; }
    bool operator!=(const Fingerprint &o) const { return !(*this == o); }
};

/* A key as the store sees it: bytes compared in full, plus their hash. */
struct KeyRef {
    const void *data;
    uint32_t length;
    uint64_t hash;
};

struct L1Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t sets = 0;
    uint64_t evictions = 0;
    uint64_t expirations = 0;
    uint64_t entries = 0;
    uint64_t bytes = 0;          /* key + value bytes stored */
    uint64_t capacity_bytes = 0; /* data block bytes available */
};

enum class LookupStatus {
    Hit,                 /* value copied out */
    Miss,                /* no entry for this key */
    Expired,             /* an entry exists but its TTL has passed */
    FingerprintMismatch, /* an entry exists but another query produced it */
    NoMemory,            /* the sink could not allocate the copy */
};

enum class PutStatus {
    Stored,
    TooLarge, /* larger than the partition can ever hold */
};

/*
 * Where lookup() copies a value to. allocate() is called once, under the
 * partition lock, with the value's length; it must not throw or longjmp.
 * Returning nullptr makes the lookup report NoMemory.
 */
struct ValueSink {
    void *(*allocate)(void *context, size_t length);
    void *context;
    /* filled in by lookup() on Hit */
    void *value = nullptr;
    size_t length = 0;
    int64_t expires_at = 0;
    Fingerprint fingerprint;
};

class L1Store {
  public:
    static constexpr uint32_t kBlockSize = 256;
    static constexpr uint32_t kMaxKeyLength = UINT32_MAX / 2;

    /* Smallest block that format() accepts for the given partition count. */
    static size_t min_size(uint32_t partitions);

    /*
     * Lays out an empty store over [memory, memory + size). memory must be
     * aligned to 8 bytes. Returns nullptr when size is below min_size().
     */
    static L1Store *format(void *memory, size_t size, uint32_t partitions);

    /* The store that format() laid out at this address (in any process). */
    static L1Store *attach(void *memory);

    uint32_t partition_count() const { return partitions_; }
    uint32_t partition_of(uint64_t hash) const;

    /* Largest key + value a single entry may hold. */
    size_t max_entry_bytes() const;

    /*
     * Finds key. With want != nullptr an entry with another fingerprint is a
     * FingerprintMismatch; with want == nullptr any fingerprint matches.
     * On Hit the value is copied into memory from sink.allocate().
     */
    LookupStatus lookup(const KeyRef &key, int64_t now, const Fingerprint *want,
                        ValueSink &sink);

    /*
     * Stores key -> value, replacing any entry for the same key, evicting
     * entries of the partition by CLOCK until the new one fits. On TooLarge
     * the key's old entry is removed all the same.
     */
    PutStatus put(const KeyRef &key, const Fingerprint &fingerprint, const void *value,
                  size_t value_length, int64_t expires_at, int64_t now);

    /* Removes key; true if it was there (expired or not). */
    bool erase(const KeyRef &key);

    /* Removes key only if its entry has expired at now (counted as expiration). */
    bool erase_expired(const KeyRef &key, int64_t now);

    /*
     * Removes every entry of one partition whose key starts with the given
     * bytes (all of them for an empty prefix); returns how many.
     */
    uint64_t erase_prefix(uint32_t partition, const void *prefix, uint32_t prefix_length);

    void stats(L1Stats &out) const;
    void reset_counters();

    /* A hit the caller refused (its value went stale): counted as a miss instead. No lock needed. */
    void count_stale_hit(uint64_t hash);

  private:
    struct Partition;
    struct Slot;

    Partition *partition(uint32_t index) const;

    uint64_t magic_;
    uint32_t partitions_;
    uint32_t reserved_;
    uint64_t partition_stride_;
};

}  // namespace tusk::core
