/* metric_registry.cpp: the shared metric table (see metric_registry.hpp for its rules). */
#include "core/metric_registry.hpp"

#include <cstring>
#include <new>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tusk::core {

namespace {

size_t header_bytes()
{
    /* Slots start at a cache line, so no two slots share one. */
    return (sizeof(MetricRegistry) + 63) / 64 * 64;
}

size_t slot_stride() { return (sizeof(MetricSlot) + 63) / 64 * 64; }

bool name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

}  // namespace

const char *metric_kind_name(MetricKind kind)
{
    switch (kind) {
        case MetricKind::Counter:
            return "counter";
        case MetricKind::Gauge:
            return "gauge";
        case MetricKind::Histogram:
            return "histogram";
    }
    return "unknown";
}

bool valid_metric_name(std::string_view name)
{
    if (name.empty() || name.size() > kMaxMetricNameLength)
        return false;
    for (size_t i = 0; i < name.size(); i++) {
        if (!name_char(name[i], i == 0))
            return false;
    }
    return true;
}

uint64_t metric_name_hash(std::string_view name) { return XXH3_64bits(name.data(), name.size()); }

double MetricSlot::current_value() const { return bits_to_double(value.load(std::memory_order_relaxed)); }

size_t MetricRegistry::bytes_for(uint32_t capacity) { return header_bytes() + size_t(capacity) * slot_stride(); }

MetricSlot *MetricRegistry::slots() const
{
    return reinterpret_cast<MetricSlot *>(const_cast<char *>(reinterpret_cast<const char *>(this)) +
                                          header_bytes());
}

MetricSlot &MetricRegistry::slot(uint32_t i) const
{
    return *reinterpret_cast<MetricSlot *>(reinterpret_cast<char *>(slots()) + size_t(i) * slot_stride());
}

MetricRegistry *MetricRegistry::create(void *memory, uint32_t capacity)
{
    auto *registry = new (memory) MetricRegistry;
    registry->capacity_ = capacity;
    registry->used_.store(0, std::memory_order_relaxed);
    registry->created_at_.store(0, std::memory_order_relaxed);
    registry->collected_at_.store(0, std::memory_order_relaxed);
    char *base = static_cast<char *>(memory) + header_bytes();
    for (uint32_t i = 0; i < capacity; i++) {
        auto *slot = new (base + size_t(i) * slot_stride()) MetricSlot;
        slot->state.store(MetricSlot::kEmpty, std::memory_order_relaxed);
        slot->name_length = 0;
        slot->name[0] = '\0';
    }
    return registry;
}

MetricSlot *MetricRegistry::find(std::string_view name) const
{
    if (capacity_ == 0)
        return nullptr;
    uint64_t hash = metric_name_hash(name);
    for (uint32_t probe = 0, i = uint32_t(hash % capacity_); probe < capacity_;
         probe++, i = (i + 1 == capacity_ ? 0 : i + 1)) {
        MetricSlot *slot = &this->slot(i);
        if (slot->state.load(std::memory_order_acquire) != MetricSlot::kReady)
            return nullptr;
        if (slot->hash == hash && slot->name_view() == name)
            return slot;
    }
    return nullptr;
}

MetricSlot *MetricRegistry::register_locked(std::string_view name, MetricKind kind, Outcome &outcome)
{
    outcome = Outcome::Full;
    if (capacity_ == 0 || name.size() > kMaxMetricNameLength)
        return nullptr;
    uint64_t hash = metric_name_hash(name);
    for (uint32_t probe = 0, i = uint32_t(hash % capacity_); probe < capacity_;
         probe++, i = (i + 1 == capacity_ ? 0 : i + 1)) {
        MetricSlot *slot = &this->slot(i);
        if (slot->state.load(std::memory_order_acquire) == MetricSlot::kReady) {
            if (slot->hash == hash && slot->name_view() == name) {
                outcome = Outcome::Found;
                return slot;
            }
            continue;
        }
        slot->kind = kind;
        slot->builtin = false;
        slot->hash = hash;
        slot->name_length = uint32_t(name.size());
        std::memcpy(slot->name, name.data(), name.size());
        slot->name[name.size()] = '\0';
        slot->value.store(double_to_bits(0.0), std::memory_order_relaxed);
        histogram_init(slot->cells);
        slot->state.store(MetricSlot::kReady, std::memory_order_release);
        used_.fetch_add(1, std::memory_order_release);
        outcome = Outcome::Created;
        return slot;
    }
    return nullptr;
}

void metric_add(MetricSlot &slot, double delta, int64_t now)
{
    atomic_add_double(slot.value, delta);
    slot.cells.count.fetch_add(1, std::memory_order_relaxed);
    atomic_raise(slot.cells.updated_at, now);
}

void metric_set(MetricSlot &slot, double value, int64_t now)
{
    slot.value.store(double_to_bits(value), std::memory_order_relaxed);
    slot.cells.count.fetch_add(1, std::memory_order_relaxed);
    atomic_raise(slot.cells.updated_at, now);
}

void metric_reset(MetricSlot &slot)
{
    slot.value.store(double_to_bits(0.0), std::memory_order_relaxed);
    histogram_reset(slot.cells);
}

}  // namespace tusk::core
