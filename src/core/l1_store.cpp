/*
 * l1_store.cpp: the L1 cache's data structure (see l1_store.hpp for the
 * layout, the eviction policy and the locking rules the caller must follow).
 */
#include "core/l1_store.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace tusk::core {

namespace {

constexpr uint64_t kMagic = 0x7475736b4c310001ULL; /* "tuskL1" v1 */
constexpr uint32_t kNone = UINT32_MAX;
constexpr uint32_t kMinBlocksPerPartition = 8;
constexpr size_t kAlign = 64;
constexpr size_t kSlotBytes = 56; /* sizeof(L1Store::Slot), checked in format() */

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

uint64_t load(const uint64_t &v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }
void store(uint64_t &v, uint64_t x) { __atomic_store_n(&v, x, __ATOMIC_RELAXED); }
void bump(uint64_t &v, uint64_t by = 1) { __atomic_fetch_add(&v, by, __ATOMIC_RELAXED); }

}  // namespace

struct L1Store::Slot {
    uint64_t hash;
    Fingerprint fingerprint;
    int64_t expires_at;
    uint32_t key_length;
    uint32_t value_length;
    uint32_t first_block;
    uint32_t next; /* next slot in the bucket chain, or in the free list */
    uint8_t in_use;
    uint8_t referenced; /* CLOCK bit: set by readers with an atomic store */
    uint8_t padding[6];
};

struct L1Store::Partition {
    /* counters: atomics, see the locking rules */
    uint64_t hits;
    uint64_t misses;
    uint64_t sets;
    uint64_t evictions;
    uint64_t expirations;
    uint64_t entries; /* written under the exclusive lock, read atomically */
    uint64_t bytes;

    uint32_t slot_count;
    uint32_t block_count;
    uint32_t bucket_mask;
    uint32_t clock_hand;
    uint32_t free_slot;
    uint32_t free_slot_count;
    uint32_t free_block;
    uint32_t free_block_count;

    uint64_t buckets_offset; /* uint32_t[bucket_mask + 1]: first slot of each chain */
    uint64_t slots_offset;   /* Slot[slot_count] */
    uint64_t next_offset;    /* uint32_t[block_count]: next block of a chain */
    uint64_t blocks_offset;  /* kBlockSize bytes each */

    char *base() { return reinterpret_cast<char *>(this); }
    uint32_t *buckets() { return reinterpret_cast<uint32_t *>(base() + buckets_offset); }
    Slot *slots() { return reinterpret_cast<Slot *>(base() + slots_offset); }
    uint32_t *next_block() { return reinterpret_cast<uint32_t *>(base() + next_offset); }
    uint8_t *block(uint32_t i)
    {
        return reinterpret_cast<uint8_t *>(base() + blocks_offset) + size_t(i) * kBlockSize;
    }

    /* Compares len bytes of a chain, starting at byte 0, with data. */
    bool chain_equals(uint32_t first, const uint8_t *data, size_t len)
    {
        for (uint32_t b = first; len > 0; b = next_block()[b]) {
            size_t n = std::min<size_t>(len, kBlockSize);
            if (std::memcmp(block(b), data, n) != 0)
                return false;
            data += n;
            len -= n;
        }
        return true;
    }

    /* Copies len bytes of a chain, starting at byte offset, to out. */
    void chain_read(uint32_t first, size_t offset, uint8_t *out, size_t len)
    {
        uint32_t b = first;
        for (; offset >= kBlockSize; offset -= kBlockSize)
            b = next_block()[b];
        while (len > 0) {
            size_t n = std::min<size_t>(len, kBlockSize - offset);
            std::memcpy(out, block(b) + offset, n);
            out += n;
            len -= n;
            offset = 0;
            b = next_block()[b];
        }
    }

    /* Writes len bytes at byte offset of a chain; returns the position after. */
    void chain_write(uint32_t &b, size_t &offset, const uint8_t *data, size_t len)
    {
        while (len > 0) {
            if (offset == kBlockSize) {
                b = next_block()[b];
                offset = 0;
            }
            size_t n = std::min<size_t>(len, kBlockSize - offset);
            std::memcpy(block(b) + offset, data, n);
            data += n;
            len -= n;
            offset += n;
        }
    }

    uint32_t find(const KeyRef &key)
    {
        const uint8_t *data = static_cast<const uint8_t *>(key.data);
        for (uint32_t i = buckets()[key.hash & bucket_mask]; i != kNone; i = slots()[i].next) {
            Slot &s = slots()[i];
            if (s.hash == key.hash && s.key_length == key.length &&
                chain_equals(s.first_block, data, key.length))
                return i;
        }
        return kNone;
    }

    /* Unlinks slot i from its bucket, returns its blocks and the slot. */
    void remove(uint32_t i)
    {
        Slot &s = slots()[i];
        uint32_t *link = &buckets()[s.hash & bucket_mask];
        while (*link != i)
            link = &slots()[*link].next;
        *link = s.next;

        size_t total = size_t(s.key_length) + s.value_length;
        uint32_t nblocks = uint32_t(std::max<size_t>(1, (total + kBlockSize - 1) / kBlockSize));
        uint32_t last = s.first_block;
        for (uint32_t k = 1; k < nblocks; k++)
            last = next_block()[last];
        next_block()[last] = free_block;
        free_block = s.first_block;
        free_block_count += nblocks;

        s.in_use = 0;
        s.next = free_slot;
        free_slot = i;
        free_slot_count++;
        store(entries, entries - 1);
        store(bytes, bytes - total);
    }

    /* One CLOCK step sequence: frees one entry; false if the partition is empty. */
    bool evict_one(int64_t now)
    {
        for (uint64_t steps = 0; steps <= 2ULL * slot_count; steps++) {
            uint32_t i = clock_hand;
            clock_hand = (clock_hand + 1 == slot_count) ? 0 : clock_hand + 1;
            Slot &s = slots()[i];
            if (!s.in_use)
                continue;
            if (s.expires_at <= now) {
                remove(i);
                bump(expirations);
                return true;
            }
            if (__atomic_load_n(&s.referenced, __ATOMIC_RELAXED)) {
                __atomic_store_n(&s.referenced, 0, __ATOMIC_RELAXED);
                continue;
            }
            remove(i);
            bump(evictions);
            return true;
        }
        return false;
    }
};

namespace {

struct PartitionGeometry {
    uint32_t slots, blocks, buckets;
    uint64_t buckets_offset, slots_offset, next_offset, blocks_offset, end;
};

PartitionGeometry geometry_for(uint32_t blocks, size_t header)
{
    PartitionGeometry g{};
    g.blocks = blocks;
    g.slots = std::max<uint32_t>(1, blocks / 2);
    g.buckets = 1;
    while (g.buckets < g.slots)
        g.buckets <<= 1;
    g.buckets_offset = header;
    g.slots_offset = align_up(g.buckets_offset + sizeof(uint32_t) * uint64_t(g.buckets), 8);
    g.next_offset = g.slots_offset + uint64_t(g.slots) * kSlotBytes;
    g.blocks_offset = align_up(g.next_offset + sizeof(uint32_t) * uint64_t(g.blocks), 8);
    g.end = g.blocks_offset + uint64_t(g.blocks) * L1Store::kBlockSize;
    return g;
}

}  // namespace

size_t L1Store::min_size(uint32_t partitions)
{
    size_t header = align_up(sizeof(Partition), kAlign);
    size_t part = align_up(geometry_for(kMinBlocksPerPartition, header).end, kAlign);
    return align_up(sizeof(L1Store), kAlign) + size_t(partitions) * part;
}

L1Store *L1Store::format(void *memory, size_t size, uint32_t partitions)
{
    static_assert(sizeof(Slot) == kSlotBytes, "geometry_for() assumes this slot size");
    if (partitions == 0 || memory == nullptr || size < min_size(partitions))
        return nullptr;

    auto *store = new (memory) L1Store();
    store->magic_ = kMagic;
    store->partitions_ = partitions;
    store->reserved_ = 0;
    size_t stride = (size - align_up(sizeof(L1Store), kAlign)) / partitions / kAlign * kAlign;
    store->partition_stride_ = stride;

    size_t header = align_up(sizeof(Partition), kAlign);
    /* Start from an estimate of the per-block cost and shrink until it fits. */
    uint64_t blocks = (stride - header) / (kBlockSize + 4 + 28 + 4 + 4);
    blocks = std::min<uint64_t>(blocks, kNone - 1);
    while (blocks > kMinBlocksPerPartition && geometry_for(uint32_t(blocks), header).end > stride)
        blocks--;
    PartitionGeometry g = geometry_for(uint32_t(blocks), header);

    for (uint32_t p = 0; p < partitions; p++) {
        auto *part = new (store->partition(p)) Partition();
        part->slot_count = g.slots;
        part->block_count = g.blocks;
        part->bucket_mask = g.buckets - 1;
        part->buckets_offset = g.buckets_offset;
        part->slots_offset = g.slots_offset;
        part->next_offset = g.next_offset;
        part->blocks_offset = g.blocks_offset;

        std::fill_n(part->buckets(), g.buckets, kNone);
        Slot *slots = part->slots();
        for (uint32_t i = 0; i < g.slots; i++) {
            new (&slots[i]) Slot();
            slots[i].next = (i + 1 < g.slots) ? i + 1 : kNone;
        }
        part->free_slot = 0;
        part->free_slot_count = g.slots;
        uint32_t *next = part->next_block();
        for (uint32_t i = 0; i < g.blocks; i++)
            next[i] = (i + 1 < g.blocks) ? i + 1 : kNone;
        part->free_block = 0;
        part->free_block_count = g.blocks;
    }
    return store;
}

L1Store *L1Store::attach(void *memory)
{
    auto *store = static_cast<L1Store *>(memory);
    return (store != nullptr && store->magic_ == kMagic) ? store : nullptr;
}

L1Store::Partition *L1Store::partition(uint32_t index) const
{
    char *first = reinterpret_cast<char *>(const_cast<L1Store *>(this)) +
                  align_up(sizeof(L1Store), kAlign);
    return reinterpret_cast<Partition *>(first + partition_stride_ * index);
}

uint32_t L1Store::partition_of(uint64_t hash) const
{
    /* The bucket uses the low bits; the partition the high ones. */
    return uint32_t((hash >> 40) % partitions_);
}

void L1Store::count_stale_hit(uint64_t hash)
{
    Partition *p = partition(partition_of(hash));
    __atomic_fetch_sub(&p->hits, 1, __ATOMIC_RELAXED);
    bump(p->misses);
}

size_t L1Store::max_entry_bytes() const
{
    return size_t(partition(0)->block_count) * kBlockSize;
}

LookupStatus L1Store::lookup(const KeyRef &key, int64_t now, const Fingerprint *want,
                             ValueSink &sink)
{
    Partition *p = partition(partition_of(key.hash));
    uint32_t i = p->find(key);
    if (i == kNone) {
        bump(p->misses);
        return LookupStatus::Miss;
    }
    Slot &s = p->slots()[i];
    if (s.expires_at <= now) {
        bump(p->misses);
        return LookupStatus::Expired;
    }
    if (want != nullptr && *want != s.fingerprint) {
        bump(p->misses);
        return LookupStatus::FingerprintMismatch;
    }
    void *out = sink.allocate(sink.context, s.value_length);
    if (out == nullptr) {
        bump(p->misses);
        return LookupStatus::NoMemory;
    }
    p->chain_read(s.first_block, s.key_length, static_cast<uint8_t *>(out), s.value_length);
    if (!__atomic_load_n(&s.referenced, __ATOMIC_RELAXED))
        __atomic_store_n(&s.referenced, 1, __ATOMIC_RELAXED);
    sink.value = out;
    sink.length = s.value_length;
    sink.expires_at = s.expires_at;
    sink.fingerprint = s.fingerprint;
    bump(p->hits);
    return LookupStatus::Hit;
}

PutStatus L1Store::put(const KeyRef &key, const Fingerprint &fingerprint, const void *value,
                       size_t value_length, int64_t expires_at, int64_t now)
{
    Partition *p = partition(partition_of(key.hash));
    size_t total = size_t(key.length) + value_length;
    size_t need = std::max<size_t>(1, (total + kBlockSize - 1) / kBlockSize);

    /* The old value goes even when the new one cannot be kept: never serve a superseded value. */
    uint32_t old = p->find(key);
    if (old != kNone)
        p->remove(old);
    if (key.length > kMaxKeyLength || value_length > UINT32_MAX || need > p->block_count)
        return PutStatus::TooLarge;
    while (p->free_block_count < need || p->free_slot_count == 0) {
        if (!p->evict_one(now))
            return PutStatus::TooLarge; /* unreachable: an empty partition fits it */
    }

    uint32_t i = p->free_slot;
    Slot &s = p->slots()[i];
    p->free_slot = s.next;
    p->free_slot_count--;

    /* Take `need` blocks off the free list; they are already chained. */
    uint32_t first = p->free_block;
    uint32_t last = first;
    for (size_t k = 1; k < need; k++)
        last = p->next_block()[last];
    p->free_block = p->next_block()[last];
    p->next_block()[last] = kNone;
    p->free_block_count -= uint32_t(need);

    uint32_t b = first;
    size_t offset = 0;
    p->chain_write(b, offset, static_cast<const uint8_t *>(key.data), key.length);
    p->chain_write(b, offset, static_cast<const uint8_t *>(value), value_length);

    s.hash = key.hash;
    s.fingerprint = fingerprint;
    s.expires_at = expires_at;
    s.key_length = key.length;
    s.value_length = uint32_t(value_length);
    s.first_block = first;
    s.in_use = 1;
    __atomic_store_n(&s.referenced, 0, __ATOMIC_RELAXED);
    uint32_t &head = p->buckets()[key.hash & p->bucket_mask];
    s.next = head;
    head = i;

    store(p->entries, p->entries + 1);
    store(p->bytes, p->bytes + total);
    bump(p->sets);
    return PutStatus::Stored;
}

bool L1Store::erase(const KeyRef &key)
{
    Partition *p = partition(partition_of(key.hash));
    uint32_t i = p->find(key);
    if (i == kNone)
        return false;
    p->remove(i);
    return true;
}

bool L1Store::erase_expired(const KeyRef &key, int64_t now)
{
    Partition *p = partition(partition_of(key.hash));
    uint32_t i = p->find(key);
    if (i == kNone || p->slots()[i].expires_at > now)
        return false;
    p->remove(i);
    bump(p->expirations);
    return true;
}

uint64_t L1Store::erase_prefix(uint32_t partition_index, const void *prefix,
                               uint32_t prefix_length)
{
    if (partition_index >= partitions_)
        return 0;
    Partition *p = partition(partition_index);
    const uint8_t *want = static_cast<const uint8_t *>(prefix);
    uint64_t removed = 0;
    for (uint32_t i = 0; i < p->slot_count; i++) {
        Slot &s = p->slots()[i];
        if (!s.in_use || s.key_length < prefix_length)
            continue;
        if (prefix_length > 0 && !p->chain_equals(s.first_block, want, prefix_length))
            continue;
        p->remove(i);
        removed++;
    }
    return removed;
}

void L1Store::stats(L1Stats &out) const
{
    out = L1Stats{};
    for (uint32_t i = 0; i < partitions_; i++) {
        Partition *p = partition(i);
        out.hits += load(p->hits);
        out.misses += load(p->misses);
        out.sets += load(p->sets);
        out.evictions += load(p->evictions);
        out.expirations += load(p->expirations);
        out.entries += load(p->entries);
        out.bytes += load(p->bytes);
        out.capacity_bytes += uint64_t(p->block_count) * kBlockSize;
    }
}

void L1Store::reset_counters()
{
    for (uint32_t i = 0; i < partitions_; i++) {
        Partition *p = partition(i);
        store(p->hits, 0);
        store(p->misses, 0);
        store(p->sets, 0);
        store(p->evictions, 0);
        store(p->expirations, 0);
    }
}

}  // namespace tusk::core
