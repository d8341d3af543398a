/*
 * traces.cpp: spans and the tusk_traces view.
 *
 *   tusk_trace_start(operation text, metadata jsonb DEFAULT NULL) RETURNS bigint
 *   tusk_trace_end(span bigint) RETURNS interval
 *   tusk_traces_list() (the tusk_traces view), tusk_traces_reset() RETURNS bigint
 *
 * A span is opened by tusk_trace_start and closed by tusk_trace_end in the
 * same session, possibly in a later transaction: open spans live in the
 * backend, not in a transaction. Ending a span records its duration in
 * milliseconds in the histogram "<operation>_duration" and appends the
 * completed span to a ring in shared memory that the tusk_traces view reads.
 *
 * Open spans (backend-local): an array in TopMemoryContext of at most
 * kMaxOpenSpans entries (span id, wall-clock start for display, monotonic
 * start for the duration, role, histogram slot, operation, metadata text).
 * Nothing else sees it, so it takes no lock. Spans still open when the
 * session ends are dropped: they never reach the ring or the histogram.
 * Durations come from CLOCK_MONOTONIC (never stepped by NTP or an admin);
 * started_at / ended_at are wall-clock timestamps, so ended_at - started_at
 * can differ slightly from the duration.
 *
 * The operation name must make "<operation>_duration" a valid metric name
 * (core::valid_metric_name: letters, digits and underscores, not starting
 * with a digit, at most 63 bytes, so the operation is at most 54 bytes).
 * The histogram slot is resolved when the span starts, so a full metric
 * registry or a name clash with a counter or gauge is an error of
 * tusk_trace_start, never of tusk_trace_end. Slots never move or go away
 * (metric_registry.hpp), so the open span keeps the pointer.
 *
 * Metadata is kept as the jsonb's text (JsonbToCString, in the encoding of
 * the database that started the span). When that text is longer than
 * kMaxMetadataBytes it is replaced by {"bytes": <its length>, "truncated":
 * true}, so that the view can always cast it back to jsonb (cutting JSON in
 * the middle would not parse). The view reads non-ASCII metadata written in
 * a database of another encoding as {"encoding": "<name>", "unreadable":
 * true} rather than mis-decoding it or failing.
 *
 * Shared memory "tusk traces": a TraceRing header followed by
 * tusk.max_traces fixed-size TraceEntry slots (about 1.1 kB each). Entry
 * number `position` (counted from server start) lives in slot position %
 * capacity; the ring holds positions [max(first_position, write_position -
 * capacity), write_position).
 * Locking rules:
 *   - next_span_id is a pg_atomic_uint64 (fetch-add, no lock); ids start at
 *     1, are unique server-wide and are never reused (not even by a reset).
 *   - Everything else in the ring (write_position, first_position, the
 *     entries) is read under the LWLock "tusk traces" in shared mode and
 *     written under it in exclusive mode. The lock is held only for
 *     memcpy-sized work: nothing that can raise an error, allocate, or
 *     touch the catalogs runs while it is held. Writers build the entry on
 *     their stack first; the view copies entries out in batches into memory
 *     allocated before taking the lock, and only after releasing it checks
 *     privileges and builds tuples. A view scan that is overtaken by
 *     writers (its next entry overwritten between two batches) ends there:
 *     older spans are gone from the ring anyway.
 *
 * Privacy (like pg_stat_activity): a role sees the spans of the roles whose
 * privileges it has (has_privs_of_role), all spans with pg_read_all_stats
 * or as superuser. The span's role is GetUserId() at tusk_trace_start.
 *
 * Boundary (guard.hpp): the SQL bodies run inside sql_entry() and hold no
 * C++ object with a destructor, so they call PostgreSQL directly.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tusk_trace_start);
PG_FUNCTION_INFO_V1(tusk_trace_end);
PG_FUNCTION_INFO_V1(tusk_traces_list);
PG_FUNCTION_INFO_V1(tusk_traces_reset);
}

#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "core/histogram.hpp"
#include "core/metric_registry.hpp"
#include "guard.hpp"
#include "metrics.hpp"
#include "traces.hpp"

namespace tusk {

namespace {

constexpr const char *kTranche = "tusk traces";
constexpr const char kDurationSuffix[] = "_duration";
constexpr size_t kDurationSuffixLength = sizeof kDurationSuffix - 1;
/* Longest operation name: "<operation>_duration" must fit a metric name. */
constexpr size_t kMaxOperationLength = core::kMaxMetricNameLength - kDurationSuffixLength;
/* Longest metadata text kept; longer metadata is replaced by a marker. */
constexpr size_t kMaxMetadataBytes = 1024;
/* Spans open at once in one session. */
constexpr int kMaxOpenSpans = 1000;
/* Ring entries the view copies out per lock acquisition. */
constexpr int kListBatch = 64;

int max_traces = 1000; /* tusk.max_traces */

/* One completed span in the ring. Fixed size; plain data only. */
struct TraceEntry {
    uint64 span_id;
    Oid role;
    Oid database;
    int32 pid;
    int32 encoding;        /* of the database that started the span (metadata's encoding) */
    TimestampTz started_at;
    TimestampTz ended_at;
    int64 duration_us;
    bool has_metadata;
    bool metadata_ascii;   /* readable in any database encoding */
    uint16 metadata_length;
    char operation[core::kMaxMetricNameLength + 1];
    char metadata[kMaxMetadataBytes + 1]; /* last: copies stop after metadata_length */
};

static_assert(kMaxMetadataBytes <= UINT16_MAX, "metadata_length is 16 bits");
static_assert(std::is_standard_layout_v<TraceEntry> && std::is_trivially_copyable_v<TraceEntry>,
              "lives in raw shared memory, copied with memcpy");
static_assert(sizeof(TraceEntry) <= 1152, "update the size stated in the header comment and the GUC");

struct TraceRing {
    pg_atomic_uint64 next_span_id;
    uint64 write_position; /* entries written since server start */
    uint64 first_position; /* positions below this were cleared by tusk_traces_reset */
    uint32 capacity;
};

TraceRing *ring = nullptr;
TraceEntry *ring_entries = nullptr;
LWLock *ring_lock = nullptr;

/* A span open in this backend. */
struct OpenSpan {
    uint64 span_id;
    TimestampTz started_at;
    int64 start_ns;            /* metrics_clock_ns() */
    Oid role;
    core::MetricSlot *slot;    /* "<operation>_duration" */
    char *metadata;            /* TopMemoryContext, or nullptr */
    uint16 metadata_length;
    bool metadata_ascii;
    char operation[kMaxOperationLength + 1];
};

OpenSpan *open_spans = nullptr; /* TopMemoryContext */
int open_count = 0;
int open_capacity = 0;

Size header_bytes() { return MAXALIGN(sizeof(TraceRing)); }

Size shmem_bytes() { return add_size(header_bytes(), mul_size(Size(max_traces), sizeof(TraceEntry))); }

/* The oldest position still in the ring (lock held). */
uint64 oldest_position()
{
    uint64 oldest = ring->write_position > ring->capacity ? ring->write_position - ring->capacity : 0;
    return oldest > ring->first_position ? oldest : ring->first_position;
}

void require_ring()
{
    if (ring == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("tusk traces need tusk in shared_preload_libraries"),
                        errhint("Add tusk to shared_preload_libraries in postgresql.conf and restart.")));
}

bool is_ascii(const char *s, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        if (static_cast<unsigned char>(s[i]) & 0x80)
            return false;
    }
    return true;
}

/* The open span with this id, or -1. */
int find_open(uint64 span_id)
{
    for (int i = 0; i < open_count; i++) {
        if (open_spans[i].span_id == span_id)
            return i;
    }
    return -1;
}

/* Room for one more open span (may raise: out of memory, or too many open). */
void reserve_open_span()
{
    if (open_count >= kMaxOpenSpans)
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("too many open spans in this session"),
                        errdetail("At most %d spans may be open at once in one session.", kMaxOpenSpans),
                        errhint("End spans with tusk_trace_end(); a span stays open until it is ended "
                                "or the session ends.")));
    if (open_count < open_capacity)
        return;
    int capacity = open_capacity == 0 ? 16 : open_capacity * 2;
    if (capacity > kMaxOpenSpans)
        capacity = kMaxOpenSpans;
    Size bytes = sizeof(OpenSpan) * Size(capacity);
    open_spans = static_cast<OpenSpan *>(open_spans == nullptr ? MemoryContextAlloc(TopMemoryContext, bytes)
                                                               : repalloc(open_spans, bytes));
    open_capacity = capacity;
}

Datum trace_start(FunctionCallInfo fcinfo)
{
    require_ring();
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("operation must not be NULL")));
    text *operation = PG_GETARG_TEXT_PP(0);
    const char *op = VARDATA_ANY(operation);
    size_t op_length = VARSIZE_ANY_EXHDR(operation);
    if (op_length == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_NAME), errmsg("operation must not be empty")));
    if (op_length > kMaxOperationLength)
        ereport(ERROR, (errcode(ERRCODE_INVALID_NAME),
                        errmsg("operation name is too long (%zu bytes)", op_length),
                        errdetail("An operation name is at most %zu bytes, so that \"<operation>%s\" is a "
                                  "valid metric name.",
                                  kMaxOperationLength, kDurationSuffix)));
    char metric_name[core::kMaxMetricNameLength + 1];
    memcpy(metric_name, op, op_length);
    memcpy(metric_name + op_length, kDurationSuffix, kDurationSuffixLength);
    size_t metric_length = op_length + kDurationSuffixLength;
    metric_name[metric_length] = '\0';
    if (!core::valid_metric_name(std::string_view(metric_name, metric_length)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_NAME),
                        errmsg("invalid operation name \"%s\"", pnstrdup(op, op_length)),
                        errdetail("An operation name is letters, digits and underscores, not starting with "
                                  "a digit: \"<operation>%s\" becomes the name of its duration histogram.",
                                  kDurationSuffix)));
    reserve_open_span();
    core::MetricSlot *slot = metric_slot_for(metric_name, metric_length, core::MetricKind::Histogram);

    char *metadata = nullptr;
    size_t metadata_length = 0;
    if (!PG_ARGISNULL(1)) {
        Jsonb *json = PG_GETARG_JSONB_P(1);
        char *text_form = JsonbToCString(nullptr, &json->root, VARSIZE(json));
        metadata_length = strlen(text_form);
        if (metadata_length > kMaxMetadataBytes) {
            text_form = psprintf("{\"bytes\": %zu, \"truncated\": true}", metadata_length);
            metadata_length = strlen(text_form);
        }
        metadata = MemoryContextStrdup(TopMemoryContext, text_form);
    }

    /* Nothing below can raise: the span id is not lost to an error. */
    OpenSpan &span = open_spans[open_count++];
    span.span_id = pg_atomic_fetch_add_u64(&ring->next_span_id, 1);
    span.role = GetUserId();
    span.slot = slot;
    span.metadata = metadata;
    span.metadata_length = uint16(metadata_length);
    span.metadata_ascii = metadata == nullptr || is_ascii(metadata, metadata_length);
    memcpy(span.operation, op, op_length);
    span.operation[op_length] = '\0';
    span.started_at = GetCurrentTimestamp();
    span.start_ns = metrics_clock_ns();
    PG_RETURN_INT64(int64(span.span_id));
}

Datum trace_end(FunctionCallInfo fcinfo)
{
    int64 end_ns = metrics_clock_ns();
    TimestampTz ended_at = GetCurrentTimestamp();
    require_ring();
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("span must not be NULL")));
    int64 span_id = PG_GETARG_INT64(0);
    int index = span_id > 0 ? find_open(uint64(span_id)) : -1;
    if (index < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("span " INT64_FORMAT " is not open in this session", span_id),
                        errdetail("A span is ended once, by the session that started it.")));
    OpenSpan &span = open_spans[index];
    int64 duration_ns = end_ns - span.start_ns;
    if (duration_ns < 0)
        duration_ns = 0;

    /* 0 and values from 1e-9 ms up are recorded; a span of over 30 years would be dropped. */
    core::histogram_record(span.slot->cells, double(duration_ns) / 1e6, metrics_timestamp());

    TraceEntry entry;
    entry.span_id = span.span_id;
    entry.role = span.role;
    entry.database = MyDatabaseId;
    entry.pid = MyProcPid;
    entry.encoding = GetDatabaseEncoding();
    entry.started_at = span.started_at;
    entry.ended_at = ended_at;
    entry.duration_us = duration_ns / 1000;
    entry.has_metadata = span.metadata != nullptr;
    entry.metadata_ascii = span.metadata_ascii;
    entry.metadata_length = entry.has_metadata ? span.metadata_length : 0;
    strlcpy(entry.operation, span.operation, sizeof entry.operation);
    if (entry.has_metadata)
        memcpy(entry.metadata, span.metadata, entry.metadata_length);
    entry.metadata[entry.metadata_length] = '\0';

    LWLockAcquire(ring_lock, LW_EXCLUSIVE);
    uint64 position = ring->write_position++;
    memcpy(&ring_entries[position % ring->capacity], &entry, offsetof(TraceEntry, metadata) + entry.metadata_length + 1);
    LWLockRelease(ring_lock);

    if (span.metadata != nullptr)
        pfree(span.metadata);
    open_spans[index] = open_spans[--open_count];

    Interval *duration = static_cast<Interval *>(palloc0(sizeof(Interval)));
    duration->time = entry.duration_us;
    PG_RETURN_INTERVAL_P(duration);
}

/* The view's metadata column for one entry (jsonb text, in this database's encoding). */
const char *metadata_text(const TraceEntry &entry)
{
    if (entry.metadata_ascii || entry.encoding == GetDatabaseEncoding())
        return entry.metadata;
    return psprintf("{\"encoding\": \"%s\", \"unreadable\": true}", pg_encoding_to_char(entry.encoding));
}

Datum traces_list(FunctionCallInfo fcinfo)
{
    require_ring();
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Oid reader = GetUserId();
    bool see_all = has_privs_of_role(reader, ROLE_PG_READ_ALL_STATS);
    auto *batch = static_cast<TraceEntry *>(palloc(sizeof(TraceEntry) * kListBatch));
    MemoryContext rows_context = AllocSetContextCreate(CurrentMemoryContext, "tusk traces rows", ALLOCSET_DEFAULT_SIZES);

    /* Newest first: positions next - 1, next - 2, ... down to the oldest still in the ring. */
    uint64 next = 0;
    bool started = false;
    for (;;) {
        int n = 0;
        LWLockAcquire(ring_lock, LW_SHARED);
        if (!started) {
            next = ring->write_position;
            started = true;
        }
        uint64 oldest = oldest_position();
        while (n < kListBatch && next > oldest) {
            next--;
            const TraceEntry &from = ring_entries[next % ring->capacity];
            size_t metadata_length = Min(size_t(from.metadata_length), kMaxMetadataBytes);
            memcpy(&batch[n], &from, offsetof(TraceEntry, metadata) + metadata_length);
            batch[n].metadata_length = uint16(metadata_length);
            batch[n].metadata[metadata_length] = '\0';
            n++;
        }
        bool more = next > oldest;
        LWLockRelease(ring_lock);

        /* The row's values (names, interval, jsonb) are garbage once the tuplestore copied them. */
        MemoryContext caller_context = MemoryContextSwitchTo(rows_context);
        for (int i = 0; i < n; i++) {
            const TraceEntry &entry = batch[i];
            if (!see_all && !has_privs_of_role(reader, entry.role))
                continue;
            /* span_id, operation, role, database, pid, started_at, ended_at, duration, metadata */
            Datum values[9];
            bool nulls[9] = {false, false, false, false, false, false, false, false, false};
            values[0] = Int64GetDatum(int64(entry.span_id));
            values[1] = CStringGetTextDatum(entry.operation);
            const char *role_name = GetUserNameFromId(entry.role, true);
            values[2] = CStringGetTextDatum(role_name != nullptr ? role_name : psprintf("%u", entry.role));
            const char *database_name = get_database_name(entry.database);
            if (database_name != nullptr)
                values[3] = CStringGetTextDatum(database_name);
            else
                nulls[3] = true;
            values[4] = Int32GetDatum(entry.pid);
            values[5] = TimestampTzGetDatum(entry.started_at);
            values[6] = TimestampTzGetDatum(entry.ended_at);
            Interval *duration = static_cast<Interval *>(palloc0(sizeof(Interval)));
            duration->time = entry.duration_us;
            values[7] = IntervalPGetDatum(duration);
            if (entry.has_metadata)
                values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(metadata_text(entry)));
            else
                nulls[8] = true;
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        }
        MemoryContextSwitchTo(caller_context);
        MemoryContextReset(rows_context);
        if (!more)
            break;
    }
    MemoryContextDelete(rows_context);
    pfree(batch);
    return (Datum) 0;
}

Datum traces_reset(FunctionCallInfo)
{
    require_ring();
    LWLockAcquire(ring_lock, LW_EXCLUSIVE);
    uint64 cleared = ring->write_position - oldest_position();
    ring->first_position = ring->write_position;
    LWLockRelease(ring_lock);
    PG_RETURN_INT64(int64(cleared));
}

}  // namespace

void traces_define_gucs()
{
    /*
     * A PGC_POSTMASTER variable can only be created while preloading (else
     * PostgreSQL ends the backend with FATAL); without the preload there is
     * no ring to size, and the trace functions raise 55000.
     */
    if (!process_shared_preload_libraries_in_progress)
        return;
    DefineCustomIntVariable("tusk.max_traces", "Completed spans kept for the tusk_traces view.",
                            "The most recent spans are kept; each takes about 1.1 kB of shared memory. "
                            "Set at server start.",
                            &max_traces, 1000, 16, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
}

void traces_request_shmem()
{
    RequestAddinShmemSpace(shmem_bytes());
    RequestNamedLWLockTranche(kTranche, 1);
}

void traces_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    void *memory = ShmemInitStruct("tusk traces", shmem_bytes(), &found);
    ring = static_cast<TraceRing *>(memory);
    ring_entries = reinterpret_cast<TraceEntry *>(static_cast<char *>(memory) + header_bytes());
    if (!found) {
        pg_atomic_init_u64(&ring->next_span_id, 1);
        ring->write_position = 0;
        ring->first_position = 0;
        ring->capacity = uint32(max_traces);
    }
    ring_lock = &(GetNamedLWLockTranche(kTranche))->lock;
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace tusk

extern "C" {

Datum tusk_trace_start(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::trace_start(fcinfo); });
}

Datum tusk_trace_end(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::trace_end(fcinfo); });
}

Datum tusk_traces_list(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::traces_list(fcinfo); });
}

Datum tusk_traces_reset(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::traces_reset(fcinfo); });
}

}
