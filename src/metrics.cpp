/*
 * metrics.cpp: the metric registry in shared memory and the built-in metrics.
 *
 * Shared memory and locking: one block "tusk metrics", laid out by
 * core::MetricRegistry for tusk.max_metrics slots, plus one LWLock ("tusk
 * metrics"). Lookups and every recording take no lock (see
 * metric_registry.hpp); only registering a new name takes the LWLock,
 * exclusively, for a probe and a slot fill. The built-in metrics are
 * registered by the postmaster when the block is created; each backend
 * resolves their slots once and keeps the pointers (slots never move).
 */
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

#include <time.h>

#include <cstring>

#include "metrics.hpp"

namespace tusk {

namespace {

constexpr const char *kTranche = "tusk metrics";

int max_metrics = 256;            /* tusk.max_metrics */
bool builtin_metrics_enabled = true; /* tusk.builtin_metrics */

core::MetricRegistry *registry = nullptr;
LWLock *registry_lock = nullptr;

struct BuiltinDefinition {
    const char *name;
    core::MetricKind kind;
};

constexpr BuiltinDefinition kBuiltins[] = {
    {"cache_l1_hits", core::MetricKind::Counter},
    {"cache_l2_hits", core::MetricKind::Counter},
    {"cache_l3_hits", core::MetricKind::Counter},
    {"cache_misses", core::MetricKind::Counter},
    {"database_query_count", core::MetricKind::Counter},
    {"cache_l1_time", core::MetricKind::Histogram},
    {"cache_l2_time", core::MetricKind::Histogram},
    {"cache_l3_time", core::MetricKind::Histogram},
    {"database_query_time", core::MetricKind::Histogram},
    {"tusk_cached_time", core::MetricKind::Histogram},
    {"tusk_cache_get_time", core::MetricKind::Histogram},
    {"tusk_cache_set_time", core::MetricKind::Histogram},
    {"tusk_cache_delete_time", core::MetricKind::Histogram},
    {"tusk_cache_invalidate_time", core::MetricKind::Histogram},
    {"tusk_cache_flush_time", core::MetricKind::Histogram},
    {"tusk_query_time", core::MetricKind::Histogram},
    {"batch_insert_records", core::MetricKind::Counter},
    {"batch_insert_time", core::MetricKind::Histogram},
};
static_assert(sizeof kBuiltins / sizeof kBuiltins[0] == size_t(Builtin::Count), "one definition per Builtin");

/* This backend's pointers to the built-in slots, resolved on first use. */
core::MetricSlot *builtin_slots[size_t(Builtin::Count)];
bool builtin_slots_resolved = false;

bool resolve_builtin_slots()
{
    if (registry == nullptr)
        return false;
    for (size_t i = 0; i < size_t(Builtin::Count); i++) {
        builtin_slots[i] = registry->find(kBuiltins[i].name);
        if (builtin_slots[i] == nullptr)
            return false;
    }
    builtin_slots_resolved = true;
    return true;
}

core::MetricSlot *builtin_slot(Builtin metric)
{
    if (!builtin_slots_resolved && !resolve_builtin_slots())
        return nullptr;
    return builtin_slots[size_t(metric)];
}

Size shmem_bytes() { return core::MetricRegistry::bytes_for(uint32_t(max_metrics)); }

}  // namespace

void metrics_define_gucs()
{
    /* PostgreSQL ends a backend that creates a PGC_POSTMASTER variable outside preloading. */
    if (process_shared_preload_libraries_in_progress)
        DefineCustomIntVariable("tusk.max_metrics", "Most metrics (built-in and user) the server can hold.",
                                "Each takes about 20 kB of shared memory. Set at server start.", &max_metrics,
                                256, int(size_t(Builtin::Count)) + 1, 100000, PGC_POSTMASTER, 0, nullptr,
                                nullptr, nullptr);
    DefineCustomBoolVariable("tusk.builtin_metrics", "Whether tusk's functions record their own metrics.",
                             nullptr, &builtin_metrics_enabled, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

void metrics_request_shmem()
{
    RequestAddinShmemSpace(shmem_bytes());
    RequestNamedLWLockTranche(kTranche, 1);
}

void metrics_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    void *memory = ShmemInitStruct("tusk metrics", shmem_bytes(), &found);
    if (!found) {
        registry = core::MetricRegistry::create(memory, uint32_t(max_metrics));
        registry->set_created_at(GetCurrentTimestamp());
        for (const BuiltinDefinition &builtin : kBuiltins) {
            core::MetricRegistry::Outcome outcome;
            core::MetricSlot *slot = registry->register_locked(builtin.name, builtin.kind, outcome);
            if (slot != nullptr)
                slot->builtin = true;
        }
    } else {
        registry = static_cast<core::MetricRegistry *>(memory);
    }
    registry_lock = &(GetNamedLWLockTranche(kTranche))->lock;
    LWLockRelease(AddinShmemInitLock);
}

bool builtin_metrics_on() { return builtin_metrics_enabled && registry != nullptr; }

int64_t metrics_clock_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t builtin_timer_start() { return builtin_metrics_on() ? metrics_clock_ns() : 0; }

int64_t metrics_timestamp()
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    int64_t unix_us = int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    return unix_us - int64_t(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

void builtin_count(Builtin metric)
{
    if (!builtin_metrics_on())
        return;
    if (core::MetricSlot *slot = builtin_slot(metric))
        core::metric_add(*slot, 1, metrics_timestamp());
}

void builtin_add(Builtin metric, double delta)
{
    if (!builtin_metrics_on())
        return;
    if (core::MetricSlot *slot = builtin_slot(metric))
        core::metric_add(*slot, delta, metrics_timestamp());
}

void builtin_time_since(Builtin metric, int64_t start_ns)
{
    if (!builtin_metrics_on())
        return;
    if (core::MetricSlot *slot = builtin_slot(metric)) {
        double ms = double(metrics_clock_ns() - start_ns) / 1e6;
        core::histogram_record(slot->cells, ms < 0 ? 0 : ms, metrics_timestamp());
    }
}

core::MetricRegistry *metric_registry() { return registry; }

core::MetricSlot *metric_slot_for(const char *name, size_t length, core::MetricKind kind)
{
    if (registry == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("tusk metrics need tusk in shared_preload_libraries")));
    std::string_view view(name, length);
    if (!core::valid_metric_name(view))
        ereport(ERROR, (errcode(ERRCODE_INVALID_NAME), errmsg("invalid metric name \"%s\"", pnstrdup(name, length)),
                        errdetail("A metric name is 1 to %zu characters: letters, digits and "
                                  "underscores, not starting with a digit.",
                                  core::kMaxMetricNameLength)));
    core::MetricSlot *slot = registry->find(view);
    if (slot == nullptr) {
        core::MetricRegistry::Outcome outcome;
        LWLockAcquire(registry_lock, LW_EXCLUSIVE);
        slot = registry->register_locked(view, kind, outcome);
        LWLockRelease(registry_lock);
        if (slot == nullptr)
            ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                            errmsg("cannot create metric \"%s\": all %u metric slots are in use", pnstrdup(name, length),
                                   registry->capacity()),
                            errhint("Raise tusk.max_metrics (takes effect at server start).")));
    }
    if (slot->builtin)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("metric \"%s\" is recorded by tusk itself", pnstrdup(name, length)),
                        errhint("Choose another name for your own metrics.")));
    if (slot->kind != kind)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("metric \"%s\" is a %s, not a %s", pnstrdup(name, length), core::metric_kind_name(slot->kind),
                               core::metric_kind_name(kind))));
    return slot;
}

core::MetricSlot *existing_metric_slot(const char *name, size_t length)
{
    core::MetricSlot *slot = registry != nullptr ? registry->find(std::string_view(name, length)) : nullptr;
    if (slot == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("metric \"%s\" does not exist", pnstrdup(name, length))));
    return slot;
}

}  // namespace tusk
