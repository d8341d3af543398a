/* dependency_clock.cpp: the change counters of cached values (see dependency_clock.hpp). */
#include "core/dependency_clock.hpp"

#include <cstring>
#include <new>

#include <xxhash.h>

namespace tusk::core {

namespace {

constexpr uint32_t kValidityMagic = 0x31444b54; /* "TKD1" */

void put32(uint8_t *out, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        out[i] = uint8_t(v >> (8 * i));
}

void put64(uint8_t *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = uint8_t(v >> (8 * i));
}

uint32_t get32(const uint8_t *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= uint32_t(in[i]) << (8 * i);
    return v;
}

uint64_t get64(const uint8_t *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= uint64_t(in[i]) << (8 * i);
    return v;
}

}  // namespace

uint32_t dependency_slot(uint32_t database, uint32_t relation)
{
    uint32_t ids[2] = {database, relation};
    uint32_t slot = uint32_t(XXH3_64bits(ids, sizeof ids)) % kDependencySlots;
    /* kEverythingSlot is reserved: no relation shares it. */
    return slot == kEverythingSlot ? 1 : slot;
}

size_t encode_validity(const ValidityHeader &header, const uint32_t *slots, uint8_t *out)
{
    put32(out, kValidityMagic);
    out[4] = uint8_t(header.flags);
    out[5] = uint8_t(header.flags >> 8);
    out[6] = uint8_t(header.count);
    out[7] = uint8_t(header.count >> 8);
    put64(out + 8, header.domain);
    put64(out + 16, header.fill_clock);
    for (uint32_t i = 0; i < header.count; i++)
        put32(out + kValidityHeaderBytes + 4 * size_t(i), slots[i]);
    if (header.flags & kValidityReplay)
        put64(out + kValidityHeaderBytes + 4 * size_t(header.count), header.replay);
    return validity_size(header.count, header.flags);
}

bool decode_validity(const uint8_t *data, size_t length, ValidityHeader &header, const uint8_t *&slots)
{
    if (data == nullptr || length < kValidityHeaderBytes || get32(data) != kValidityMagic)
        return false;
    header.flags = uint16_t(data[4] | (data[5] << 8));
    header.count = uint16_t(data[6] | (data[7] << 8));
    if (header.count > kMaxValiditySlots)
        return false; /* never written by tusk: a record from elsewhere must not cost more to check */
    header.domain = get64(data + 8);
    header.fill_clock = get64(data + 16);
    if (length != validity_size(header.count, header.flags))
        return false;
    header.replay = (header.flags & kValidityReplay) ? get64(data + kValidityHeaderBytes + 4 * size_t(header.count)) : 0;
    slots = data + kValidityHeaderBytes;
    return true;
}

uint32_t validity_slot(const uint8_t *slots, uint32_t i) { return get32(slots + 4 * size_t(i)); }

DependencyClock *DependencyClock::format(void *memory, uint64_t domain)
{
    auto *clock = new (memory) DependencyClock();
    clock->domain_.store(domain);
    clock->clock_.store(1);
    for (auto &c : clock->counters_)
        c.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return clock;
}

DependencyClock *DependencyClock::restore(void *memory, uint64_t domain, uint64_t clock, const uint64_t *counters)
{
    auto *restored = new (memory) DependencyClock();
    restored->domain_.store(domain);
    restored->clock_.store(clock);
    for (uint32_t i = 0; i < kDependencySlots; i++)
        restored->counters_[i].store(counters[i], std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return restored;
}

uint64_t DependencyClock::save(uint64_t *counters) const
{
    for (uint32_t i = 0; i < kDependencySlots; i++)
        counters[i] = counters_[i].load();
    return clock_.load();
}

uint64_t DependencyClock::bump(const uint32_t *slots, size_t count)
{
    uint64_t value = clock_.fetch_add(1) + 1;
    for (size_t i = 0; i < count; i++) {
        std::atomic<uint64_t> &c = counters_[slots[i] % kDependencySlots];
        uint64_t seen = c.load();
        while (seen < value && !c.compare_exchange_weak(seen, value)) {
        }
    }
    return value;
}

bool DependencyClock::is_current(const uint8_t *validity, size_t length) const
{
    ValidityHeader header;
    const uint8_t *slots;
    if (!decode_validity(validity, length, header, slots))
        return false;
    if (header.count == 0)
        return true;
    if (header.domain != domain_.load(std::memory_order_relaxed))
        return false;
    for (uint32_t i = 0; i < header.count; i++)
        if (counters_[validity_slot(slots, i) % kDependencySlots].load() > header.fill_clock)
            return false;
    return true;
}

}  // namespace tusk::core
