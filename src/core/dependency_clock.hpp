/*
 * dependency_clock.hpp: what makes a cached value stale, free of PostgreSQL
 * headers.
 *
 * The clock is one counter and a hashed array of per-slot change counters,
 * laid out in one raw memory block (shared memory in the server). A slot
 * stands for a relation of a database (dependency_slot()); two relations
 * that hash to one slot only invalidate each other more often, never less.
 *
 *   - A fill samples the clock (sample()) before its query takes its
 *     snapshot, and remembers the slots of everything the query read.
 *   - A committing writer, once its commit is visible to new snapshots,
 *     calls bump(): it takes a new clock value B = clock + 1 and raises
 *     each written slot's counter to at least B.
 *   - A value is current while every slot it depends on has a counter no
 *     greater than the clock it sampled (is_current()).
 *
 * Why a fill that raced a commit is never current: if the fill's snapshot
 * does not see a commit W, then W became visible after that snapshot was
 * taken, hence after the fill sampled S. W's bump comes after W became
 * visible, so its fetch-and-add comes after the sample and returns at least
 * S: B >= S + 1 > S. Counters only grow (an atomic max), so once W's bump
 * is done the fill's value fails is_current(), wherever it is stored. The
 * proof needs sample() and bump() to be sequentially consistent, as the
 * std::atomic operations below are by default.
 *
 * The domain is a random number drawn when the block is formatted (a
 * server start after a crash, or without a saved clock): a value filled
 * under another domain cannot be judged against these counters, so one
 * with dependencies is never current there. After a clean shutdown the
 * clock is saved and restored (invalidation.cpp), domain included.
 *
 * Locking rules: none. Every field is a std::atomic<uint64_t> (lock-free
 * on the platforms PostgreSQL supports, so usable across processes);
 * format() runs once before any other process attaches.
 *
 * A validity record (encode_validity()) is what an entry carries in every
 * tier: a small header (magic, flags, slot count, domain, fill clock)
 * followed by the slots as little-endian uint32.
 */
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tusk::core {

constexpr uint32_t kDependencySlots = 1u << 16;

/* The slot of relation `relation` of database `database` (relation 0: the database itself). */
uint32_t dependency_slot(uint32_t database, uint32_t relation);

/* The slot that every value computed by a query depends on: changes that concern all of them (roles). */
constexpr uint32_t kEverythingSlot = 0;

enum ValidityFlags : uint16_t {
    /* Read a relation tusk cannot watch (foreign table, catalog, sequence): bounded by its TTL only. */
    kValidityUntracked = 1,
    /* Filled with tusk.invalidation off: depends on nothing. */
    kValidityNotTracked = 2,
    /*
     * Filled on a hot standby, whose replay runs no tusk code: also current
     * only while the server's replay position is still `replay` (checked by
     * the caller; the record carries it after the slots).
     */
    kValidityReplay = 4,
};

struct ValidityHeader {
    uint16_t flags = 0;
    uint16_t count = 0; /* slots that follow */
    uint64_t domain = 0;
    uint64_t fill_clock = 0;
    uint64_t replay = 0; /* with kValidityReplay */
};

/* A value with more dependencies than this depends on its database's slot instead. */
constexpr uint32_t kMaxValiditySlots = 1024;

constexpr size_t kValidityHeaderBytes = 24;
inline size_t validity_size(uint32_t count, uint16_t flags = 0)
{
    return kValidityHeaderBytes + 4 * size_t(count) + ((flags & kValidityReplay) ? 8 : 0);
}

/* Writes header + slots (+ replay) to out (validity_size(count, flags) bytes); returns the size. */
size_t encode_validity(const ValidityHeader &header, const uint32_t *slots, uint8_t *out);

/* Reads a record; false when it is not one (wrong magic, truncated). slots points into data. */
bool decode_validity(const uint8_t *data, size_t length, ValidityHeader &header, const uint8_t *&slots);

/* Slot i of a decoded record. */
uint32_t validity_slot(const uint8_t *slots, uint32_t i);

class DependencyClock {
  public:
    static size_t size() { return sizeof(DependencyClock); }

    /* Lays out a fresh clock (every counter zero) under a new domain. */
    static DependencyClock *format(void *memory, uint64_t domain);

    /*
     * Lays out a clock saved by save() (after a clean shutdown): the same
     * domain, clock and counters, so that the values stored before it are
     * judged exactly as they were.
     */
    static DependencyClock *restore(void *memory, uint64_t domain, uint64_t clock, const uint64_t *counters);

    /* The clock and every counter (kDependencySlots of them), for restore(). */
    uint64_t save(uint64_t *counters) const;

    uint64_t domain() const { return domain_.load(); }

    /* The clock now; call before the snapshot of the query whose value it stamps. */
    uint64_t sample() const { return clock_.load(); }

    /* One writer's commit: a new clock value, raised into every slot given. Returns it. */
    uint64_t bump(const uint32_t *slots, size_t count);

    uint64_t counter(uint32_t slot) const { return counters_[slot % kDependencySlots].load(); }

    /*
     * Whether a value with this validity record is current: it depends on
     * nothing, or it was filled under this domain and no slot of it has
     * changed since its fill clock. A record that does not decode is not.
     */
    bool is_current(const uint8_t *validity, size_t length) const;

  private:
    DependencyClock() = default;
    std::atomic<uint64_t> domain_;
    std::atomic<uint64_t> clock_;
    std::atomic<uint64_t> counters_[kDependencySlots];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the clock lives in shared memory");

}  // namespace tusk::core
