/*
 * metrics.hpp: the server's metric registry (src/core/metric_registry.hpp)
 * in shared memory, and the built-in metrics every tusk operator records.
 */
#pragma once

extern "C" {
#include "postgres.h"
}

#include <cstdint>
#include <utility>

#include "guard.hpp"

#include "core/metric_registry.hpp"

namespace tusk {

/* Built-in metrics, registered at server start in this order. */
enum class Builtin : int {
    CacheL1Hits,
    CacheL2Hits,
    CacheL3Hits,
    CacheMisses,
    DatabaseQueryCount,
    CacheL1Time,
    CacheL2Time,
    CacheL3Time,
    DatabaseQueryTime,
    TuskCachedTime,
    TuskCacheGetTime,
    TuskCacheSetTime,
    TuskCacheDeleteTime,
    TuskCacheInvalidateTime,
    TuskCacheFlushTime,
    TuskQueryTime,
    BatchInsertRecords,
    BatchInsertTime,
    Count
};

void metrics_define_gucs();
void metrics_request_shmem();
void metrics_startup_shmem();

/* tusk.builtin_metrics, and a registry to record into. */
bool builtin_metrics_on();

/* A monotonic clock for durations, in nanoseconds. */
int64_t metrics_clock_ns();

/* The start of a built-in timing: metrics_clock_ns(), or 0 when built-in metrics are off. */
int64_t builtin_timer_start();

/* Built-in recording; each is a no-op when builtin_metrics_on() is false. */
void builtin_count(Builtin metric);
void builtin_add(Builtin metric, double delta);
void builtin_time_since(Builtin metric, int64_t start_ns);

/* Now as a PostgreSQL timestamp, to millisecond precision (a cheap clock). */
int64_t metrics_timestamp();

/* The registry, or nullptr when tusk was not preloaded. */
core::MetricRegistry *metric_registry();

/*
 * The slot named `name` of kind `kind`, registered if absent. Raises an
 * ERROR (before any C++ object is live: call it from plain frames) when the
 * name is invalid, names a metric of another kind, or the registry is full.
 */
core::MetricSlot *metric_slot_for(const char *name, size_t length, core::MetricKind kind);

/* The slot named `name`, or an ERROR (undefined_object) when there is none. */
core::MetricSlot *existing_metric_slot(const char *name, size_t length);

/*
 * sql_entry() that also records the call's duration in `metric` when it
 * returns (a call that raises an ERROR is not timed).
 */
template <typename F> Datum timed_sql_entry(Builtin metric, F &&body) noexcept
{
    int64_t start = builtin_timer_start();
    Datum result = sql_entry(std::forward<F>(body));
    if (start != 0)
        builtin_time_since(metric, start);
    return result;
}

}  // namespace tusk
