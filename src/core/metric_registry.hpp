/*
 * metric_registry.hpp: named counters, gauges and histograms in one fixed
 * block of shared memory, free of PostgreSQL headers.
 *
 * Layout: a header, then `capacity` slots forming an open-addressing table
 * keyed by the XXH3-64 hash of the name (linear probing from hash mod
 * capacity). Every slot has the same size: its name (at most
 * kMaxMetricNameLength bytes), kind, a value cell, and one HistogramCells
 * (about 20 kB; see histogram.hpp), so the block is capacity * ~20 kB.
 * A name is stored once; callers keep the slot pointer it resolves to.
 *
 * Shared memory and concurrency rules:
 *   - Lookups (find) take no lock. A slot's `state` goes from Empty to Ready
 *     once and never back: slots are never freed or reused while the server
 *     runs, so a pointer to a Ready slot stays valid and keeps its name and
 *     kind. Readers load `state` with acquire ordering; an Empty slot ends a
 *     probe (the name is absent).
 *   - Registration is serialized by the caller (an LWLock in the server, a
 *     mutex in tests): register_locked() probes again, fills the first
 *     Empty slot's name, kind and cells, and only then publishes it with a
 *     release store of Ready. A concurrent reader either sees the slot Empty
 *     (and registers under the lock, finding it there) or sees it complete.
 *   - Recording into a slot takes no lock (atomics; see histogram.hpp).
 *     Counters add to `value` with a CAS loop; gauges store it.
 *   - Resetting values takes no lock and is not atomic with concurrent
 *     recording (see histogram_reset); names and kinds are never reset.
 */
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/histogram.hpp"

namespace tusk::core {

enum class MetricKind : uint32_t { Counter = 1, Gauge = 2, Histogram = 3 };

const char *metric_kind_name(MetricKind kind);

constexpr size_t kMaxMetricNameLength = 63;

/*
 * A metric name is 1 to 63 bytes of [A-Za-z0-9_], not starting with a
 * digit: Prometheus metric-name syntax without ':' (which Prometheus keeps
 * for recording rules), so every name is exported as it is.
 */
bool valid_metric_name(std::string_view name);

struct MetricSlot {
    std::atomic<uint32_t> state; /* kEmpty or kReady */
    MetricKind kind;
    bool builtin; /* recorded by the server itself; set before the registry is shared */
    uint32_t name_length;
    uint64_t hash;
    char name[kMaxMetricNameLength + 1];
    std::atomic<uint64_t> value; /* double bits: a counter's total, a gauge's last value */
    HistogramCells cells;        /* histograms; counters and gauges use count and updated_at */

    static constexpr uint32_t kEmpty = 0;
    static constexpr uint32_t kReady = 1;

    std::string_view name_view() const { return std::string_view(name, name_length); }
    double current_value() const;
};

class MetricRegistry {
  public:
    /* Bytes of shared memory for `capacity` slots (header included). */
    static size_t bytes_for(uint32_t capacity);
    /* Lays out an empty registry over `memory` (bytes_for(capacity) bytes). */
    static MetricRegistry *create(void *memory, uint32_t capacity);

    /* The Ready slot with this name, or nullptr. No lock. */
    MetricSlot *find(std::string_view name) const;

    enum class Outcome { Found, Created, Full };
    /*
     * With the caller's registration lock held: the slot with this name,
     * creating it with `kind` when absent. Full when every slot is taken.
     * A Found slot may be of another kind: the caller checks.
     */
    MetricSlot *register_locked(std::string_view name, MetricKind kind, Outcome &outcome);

    uint32_t capacity() const { return capacity_; }

    /*
     * For the one process that turns the registry into history: when the
     * registry was created (caller's clock), and when it was last collected
     * (0 = never). A collector that finds 0 knows every value was recorded
     * since created_at; otherwise values predate it and it takes a baseline.
     */
    int64_t created_at() const { return created_at_.load(std::memory_order_relaxed); }
    void set_created_at(int64_t at) { created_at_.store(at, std::memory_order_relaxed); }
    int64_t collected_at() const { return collected_at_.load(std::memory_order_relaxed); }
    void set_collected_at(int64_t at) { collected_at_.store(at, std::memory_order_relaxed); }
    uint32_t used() const { return used_.load(std::memory_order_acquire); }
    /* Slot i in table order (for listing); check its state before use. */
    MetricSlot &slot(uint32_t i) const;

  private:
    uint32_t capacity_;
    std::atomic<uint32_t> used_;
    std::atomic<int64_t> created_at_;
    std::atomic<int64_t> collected_at_;

    MetricSlot *slots() const;
};

/* Counter: add delta (finite, >= 0 checked by the caller). Gauge: set. Lock-free. */
void metric_add(MetricSlot &slot, double delta, int64_t now);
void metric_set(MetricSlot &slot, double value, int64_t now);
/* Values back to zero/empty; the name and kind stay. */
void metric_reset(MetricSlot &slot);

uint64_t metric_name_hash(std::string_view name);

}  // namespace tusk::core
