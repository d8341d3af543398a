/*
 * cache_functions.cpp: the SQL entry points of the cache.
 *
 * Each function checks its arguments, makes one call into a tier (or the
 * query runner) and builds its result. Bodies run inside sql_entry() (see
 * guard.hpp); they hold no C++ objects with destructors, so they call
 * PostgreSQL directly, except for the user's query, which goes through
 * pg_call() so that its errors cross the boundary the documented way.
 *
 * Scope: every key is stored under (database, current role): one role never
 * reads what another role's query computed.
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/syscache.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(tusk_cached);
PG_FUNCTION_INFO_V1(tusk_cached_rows);
PG_FUNCTION_INFO_V1(tusk_cache_get);
PG_FUNCTION_INFO_V1(tusk_cache_set);
PG_FUNCTION_INFO_V1(tusk_cache_delete);
PG_FUNCTION_INFO_V1(tusk_cache_invalidate);
PG_FUNCTION_INFO_V1(tusk_cache_flush);
PG_FUNCTION_INFO_V1(tusk_cache_stats);
PG_FUNCTION_INFO_V1(tusk_cache_stats_reset);
PG_FUNCTION_INFO_V1(tusk_cache_invalidate_relation);
PG_FUNCTION_INFO_V1(tusk_cache_entry);
PG_FUNCTION_INFO_V1(tusk_cache_l3_wait);
}

#include <algorithm>

#include "core/cache_key.hpp"
#include "core/dependency_clock.hpp"
#include "fingerprint.hpp"
#include "invalidation.hpp"
#include "single_flight.hpp"
#include "core/ttl.hpp"
#include "guard.hpp"
#include "sql_args.hpp"
#include "l1_cache.hpp"
#include "l2_cache.hpp"
#include "l3_cache.hpp"
#include "l3_queue.hpp"
#include "metrics.hpp"
#include "pending.hpp"
#include "query_runner.hpp"
#include "row_stream.hpp"
#include "tusk.hpp"

namespace tusk {

namespace {

void require_preloaded()
{
    if (!tusk_preloaded)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("tusk must be loaded at server start"),
                 errhint("Add tusk to shared_preload_libraries in postgresql.conf and restart.")));
}

/* Scope + user key, hashed. An empty or over-long key is refused. */
EncodedKey encode_user_key(text *key, bool allow_empty = false)
{
    size_t length = VARSIZE_ANY_EXHDR(key);
    if (length == 0 && !allow_empty)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("cache key must not be empty")));
    if (length > kMaxKeyBytes)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("cache key is too long"),
                        errdetail("The key is %zu bytes; the limit is %zu bytes.", length,
                                  kMaxKeyBytes),
                        errhint("Hash long keys, for example with md5(), before caching.")));
    EncodedKey out;
    out.bytes = static_cast<uint8_t *>(palloc(core::kScopeBytes + length));
    core::CacheScope scope{MyDatabaseId, GetUserId()};
    out.length = uint32_t(core::encode_key(scope, VARDATA_ANY(key), length, out.bytes));
    out.hash = core::key_hash(out.bytes, out.length);
    return out;
}

/* An interval argument `what` in microseconds; an ERROR (with `hint`, if any) unless it is greater than zero. */
int64 positive_interval_micros(Interval *value, const char *what, const char *hint)
{
    int64 micros;
    if (core::interval_to_ttl(value->month, value->day, value->time, micros) != core::TtlStatus::Ok)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must be greater than zero", what),
                        hint != nullptr ? errhint("%s", hint) : 0));
    return micros;
}

int64 ttl_micros(Interval *ttl)
{
    return positive_interval_micros(ttl, "ttl", "Use an interval such as '30s', '5 min' or '1 day'.");
}

/* Raises undefined_table unless a relation with this OID exists. */
void require_relation(Oid relation)
{
    if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relation)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relation)));
}

/*
 * What produced a value: the query text, its params, and the session
 * settings that can change its rows or their rendering (fingerprint.hpp).
 */
core::Fingerprint query_fingerprint(text *query, Jsonb *params)
{
    core::FingerprintBuilder builder;
    builder.add(VARDATA_ANY(query), VARSIZE_ANY_EXHDR(query));
    if (params != nullptr)
        builder.add(VARDATA_ANY(params), VARSIZE_ANY_EXHDR(params));
    else
        builder.add_null();
    add_session_settings(builder);
    return builder.finish();
}

/* A user's key as each tier names it; the L2 name is made only when needed. */
struct CacheKey {
    text *user_key;
    EncodedKey l1;
    char *l2_name() const { return l2_key_for(VARDATA_ANY(user_key), VARSIZE_ANY_EXHDR(user_key)); }
};

CacheKey cache_key(text *user_key)
{
    return CacheKey{user_key, encode_user_key(user_key)};
}

/* A value and its validity record (invalidation.hpp), as every tier keeps them. */
struct Validity {
    const uint8_t *bytes;
    size_t length;
};

/*
 * Stores an encoded value in L2, unless a delete, invalidate or flush
 * has begun since `epoch` was read; checked again after the SET, which
 * is taken back if one began meanwhile (its removal may have run first).
 */
bool l2_store_checked(const char *key, const char *encoded, size_t length, int64 ttl, uint64 key_hash,
                      uint64 epoch)
{
    if (explicit_epoch(key_hash) != epoch)
        return false;
    bool stored = l2_put_encoded(key, encoded, length, ttl);
    if (stored && explicit_epoch(key_hash) != epoch) {
        l2_delete(key);
        return false;
    }
    return stored;
}

/*
 * Copies a lower tier's hit into the tiers above it (L1; and L2 when the
 * hit came from L3) with its remaining TTL and its validity, unless a
 * delete, invalidate or flush began since `epoch` (read before the lower
 * tier was).
 */
void copy_up(const CacheKey &key, const core::Fingerprint &fingerprint, Jsonb *value, Validity validity,
             int64 expires_at, int64 now, bool to_l2, uint64 epoch)
{
    if (expires_at <= now)
        return;
    auto *raw = reinterpret_cast<struct varlena *>(value);
    if (l1_accepts(key.l1.length, VARSIZE_ANY(raw) + validity.length))
        l1_put(key.l1, fingerprint, raw, validity.bytes, validity.length, expires_at, now, &epoch);
    if (to_l2 && l2_enabled()) {
        size_t length = 0;
        char *encoded = l2_encode(fingerprint, validity.bytes, validity.length, value, &length);
        l2_store_checked(key.l2_name(), encoded, length, core::remaining_ttl(expires_at, now), key.l1.hash, epoch);
    }
}

/* Says that Redis kept what a delete, invalidate or flush meant to remove. */
void warn_l2_unreachable(const char *what)
{
    ereport(WARNING, (errmsg("tusk: Redis (L2) could not be reached: %s not removed from L2", what),
                      errdetail("Servers that share the Redis may serve the old entries until their TTL ends."),
                      errhint("Repeat the call when Redis answers again.")));
}

/* Removes the keys under an L2 prefix (when L2 is on); how many, warning if Redis was out of reach. */
uint64 remove_from_l2(const char *prefix, const char *what)
{
    int64 removed = l2_delete_prefix(prefix);
    if (removed < 0)
        warn_l2_unreachable(what);
    return removed > 0 ? uint64(removed) : 0;
}

/* What an L3 delete removed; warns when L3 could not be changed (a standby, a read-only transaction). */
uint64 l3_removed(int64 removed, L3Refusal why, const char *what)
{
    if (removed >= 0)
        return uint64(removed);
    if (why == L3Refusal::Standby)
        ereport(WARNING, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                          errmsg("tusk: the L3 table cannot be changed on a hot standby: %s not removed from L3", what),
                          errdetail("This server serves L3 rows from its primary until their TTL ends."),
                          errhint("Repeat the call on the primary.")));
    else if (why == L3Refusal::ReadOnly)
        ereport(WARNING, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                          errmsg("tusk: the L3 table cannot be changed in a read-only transaction: %s not removed from L3", what),
                          errhint("Repeat the call in a read-write transaction.")));
    return 0;
}

/*
 * The built-in metrics of one tier lookup that started at `start` (0 when
 * built-in metrics are off): its latency, and a hit when there was one.
 */
void tier_looked_up(int64_t start, Builtin time, Builtin hits, bool hit)
{
    if (start == 0)
        return;
    builtin_time_since(time, start);
    if (hit)
        builtin_count(hits);
}

/* A tier's hit (current: the tiers judge that) is served; inside another fill, that fill depends on it too. */
void serve(Validity validity)
{
    fill_note_value(validity.bytes, validity.length);
}

/*
 * Looks key up in the shared tiers: L1, then L2, then L3. A stale entry (a
 * relation it read has changed since) is a miss in every tier. A lower tier's hit is copied up, unless a delete, invalidate or
 * flush ran meanwhile (the hit may be what it removed) or, from L3, some
 * transaction is deleting or replacing the row: the hit is served, not
 * spread.
 */
struct varlena *shared_lookup(const CacheKey &key, const core::Fingerprint *want, int64 now)
{
    int64_t start = builtin_timer_start();
    Validity validity{nullptr, 0};
    struct varlena *l1_hit = l1_get(key.l1, want, now, nullptr, &validity.bytes, &validity.length);
    if (l1_hit != nullptr)
        serve(validity);
    tier_looked_up(start, Builtin::CacheL1Time, Builtin::CacheL1Hits, l1_hit != nullptr);
    if (l1_hit != nullptr)
        return l1_hit;
    uint64 epoch = explicit_epoch(key.l1.hash); /* before any lower tier is read */
    int64 expires_at;
    core::Fingerprint found;
    uint8_t *stored_validity = nullptr;
    size_t stored_length = 0;
    if (l2_enabled()) {
        start = builtin_timer_start();
        Jsonb *hit = l2_get(key.l2_name(), want, now, &expires_at, &found, &stored_validity, &stored_length);
        if (hit != nullptr)
            serve(Validity{stored_validity, stored_length});
        tier_looked_up(start, Builtin::CacheL2Time, Builtin::CacheL2Hits, hit != nullptr);
        if (hit != nullptr) {
            copy_up(key, found, hit, Validity{stored_validity, stored_length}, expires_at, now, false, epoch);
            return reinterpret_cast<struct varlena *>(hit);
        }
    }
    bool settled = false;
    start = builtin_timer_start();
    Jsonb *hit = l3_get(key.l1, want, now, &expires_at, &found, &settled, &stored_validity, &stored_length);
    if (hit != nullptr)
        serve(Validity{stored_validity, stored_length});
    if (l3_enabled())
        tier_looked_up(start, Builtin::CacheL3Time, Builtin::CacheL3Hits, hit != nullptr);
    if (hit != nullptr) {
        if (settled)
            copy_up(key, found, hit, Validity{stored_validity, stored_length}, expires_at, now, true, epoch);
        return reinterpret_cast<struct varlena *>(hit);
    }
    return nullptr;
}

/*
 * Looks a query's result up where this transaction may read it from: its
 * own pending values if it has written (so it sees its own writes), else
 * the shared tiers.
 */
struct varlena *cache_lookup(const CacheKey &key, const core::Fingerprint *want, int64 now)
{
    if (transaction_has_written())
        return pending_get(key.l1, want, now);
    return shared_lookup(key, want, now);
}

/* How a value came about: what a store needs besides the value. */
struct Provenance {
    Validity validity;    /* nullptr bytes: it must not be shared (it read a temporary table) */
    uint64 epoch;         /* explicit_epoch() before it was computed */
    bool own_writes;      /* computed by a transaction that had written: it may contain them */
    WriteMark computed_at; /* the transaction's write mark before it was computed */
    bool explicit_value;  /* from tusk_cache_set */
};

/*
 * Stores a value. A value set by hand, or computed by a transaction that
 * had written, waits for the commit (pending.hpp: a rollback drops it);
 * a reading transaction's fill goes to L1 and L2 at once and to L3 at its
 * commit. True when at least one tier keeps (or will keep) the value.
 */
bool cache_store(const CacheKey &key, const core::Fingerprint &fingerprint, Jsonb *value, int64 ttl, int64 now,
                 const Provenance &from)
{
    if (from.validity.bytes == nullptr)
        return false;
    int64 expires_at = core::expiry_time(now, ttl);
    auto *raw = reinterpret_cast<struct varlena *>(value);
    bool l1_keeps = l1_accepts(key.l1.length, VARSIZE_ANY(raw) + from.validity.length);
    bool l2_on = l2_enabled();
    bool l3_on = l3_writable();
    if (!l1_keeps) {
        /* Not kept in L1: nothing may go on serving an older value there. */
        pending_forget(key.l1);
        l1_delete(key.l1);
        if (!l2_on && !l3_on)
            return false;
    }
    char *l2_key = l2_on ? key.l2_name() : nullptr;
    size_t l2_length = 0;
    char *l2_value = l2_on ? l2_encode(fingerprint, from.validity.bytes, from.validity.length, value, &l2_length)
                           : nullptr;
    if (from.own_writes || from.explicit_value) {
        /* Written to L3 when the transaction commits, then to L1 and L2. */
        pending_put(key.l1, fingerprint, raw, from.validity.bytes, from.validity.length, expires_at, from.epoch,
                    from.explicit_value, from.computed_at, l2_key, l2_value, l2_length);
        return true;
    }
    bool stored = l1_keeps && l1_put(key.l1, fingerprint, raw, from.validity.bytes, from.validity.length,
                                     expires_at, now, &from.epoch);
    if (l2_on && l2_store_checked(l2_key, l2_value, l2_length, ttl, key.l1.hash, from.epoch))
        stored = true;
    if (l3_on) {
        /*
         * Written to L3 by the database's L3 writer (this transaction takes
         * no id for it), or when the queue cannot take it, by this
         * transaction when it commits, in one batch with its other fills.
         */
        if (!l3_queue_put(key.l1, fingerprint, raw, from.validity.bytes, from.validity.length, expires_at,
                          from.epoch))
            pending_put_l3(key.l1, fingerprint, raw, from.validity.bytes, from.validity.length, expires_at,
                           from.epoch, false);
        stored = true;
    }
    return stored;
}

/* One tusk_cached call: its arguments, checked, and what produced the value it asks for. */
struct CachedCall {
    CacheKey key;
    int64 ttl;
    text *query;
    Jsonb *params;
    core::Fingerprint fingerprint;
};

/* Checks the arguments and looks the value up: a hit, or nullptr (a miss, counted). */
struct varlena *cached_lookup(FunctionCallInfo fcinfo, CachedCall *call)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    require_arg(fcinfo, 1, "ttl");
    require_arg(fcinfo, 2, "query");
    call->key = cache_key(PG_GETARG_TEXT_PP(0));
    call->ttl = ttl_micros(PG_GETARG_INTERVAL_P(1));
    call->query = PG_GETARG_TEXT_PP(2);
    call->params = PG_ARGISNULL(3) ? nullptr : PG_GETARG_JSONB_P(3);
    call->fingerprint = query_fingerprint(call->query, call->params);
    if (struct varlena *hit = cache_lookup(call->key, &call->fingerprint, GetCurrentTimestamp()))
        return hit;
    builtin_count(Builtin::CacheMisses);
    return nullptr;
}

/* What a miss knows before its query runs (the recorder samples the clock: before the snapshot). */
struct MissStart {
    FillRecorder recorder;
    uint64 epoch;
    bool own_writes;
    WriteMark computed_at;
};

void miss_begin(MissStart *start, uint64 key_hash)
{
    start->epoch = explicit_epoch(key_hash);
    start->own_writes = transaction_has_written();
    start->computed_at = current_write_mark();
    fill_begin(&start->recorder);
}

/*
 * Stores a miss's rows. Under REPEATABLE READ and SERIALIZABLE the rows
 * come from the snapshot the transaction began with, which may predate
 * the fill clock and writes committed since: such rows are returned, never
 * stored.
 */
void store_miss(const CachedCall &call, Jsonb *rows, const MissStart &start)
{
    if (IsolationUsesXactSnapshot())
        return;
    Provenance from;
    size_t length = 0;
    from.validity.bytes = fill_validity(&start.recorder, &length);
    from.validity.length = length;
    from.epoch = start.epoch;
    from.own_writes = start.own_writes;
    from.computed_at = start.computed_at;
    from.explicit_value = false;
    cache_store(call.key, call.fingerprint, rows, call.ttl, GetCurrentTimestamp(), from);
}

/* Whether concurrent misses of this call may share one execution (only values that are shared). */
bool shares_fills() { return !transaction_has_written() && !IsolationUsesXactSnapshot(); }

/* A miss: runs the query (once per concurrent miss of the entry) and stores its rows. */
struct varlena *run_miss(const CachedCall &call)
{
    FlightTicket ticket;
    if (shares_fills()) {
        FlightRole role = flight_join(call.key.l1.hash, call.fingerprint, &ticket);
        /* A waiter looks again, for the filler's value. */
        if (role == FlightRole::Waited) {
            if (struct varlena *hit = shared_lookup(call.key, &call.fingerprint, GetCurrentTimestamp()))
                return hit;
        }
        /* The filler stored nothing we may serve (failed, too large, invalidated): run it here. */
    }
    char *sql = text_to_cstring(call.query);
    Jsonb *params = call.params;
    MissStart start;
    miss_begin(&start, call.key.l1.hash);
    int64_t query_start = builtin_timer_start();
    Jsonb *rows;
    try {
        rows = pg_call([sql, params] { return run_query_as_jsonb(sql, params); });
    } catch (...) {
        fill_abandon(&start.recorder);
        throw; /* the flight lands in the abort */
    }
    fill_end(&start.recorder);
    if (query_start != 0) {
        builtin_time_since(Builtin::DatabaseQueryTime, query_start);
        builtin_count(Builtin::DatabaseQueryCount);
    }
    store_miss(call, rows, start);
    flight_land(&ticket);
    return reinterpret_cast<struct varlena *>(rows);
}

Datum cached(FunctionCallInfo fcinfo)
{
    CachedCall call;
    if (struct varlena *hit = cached_lookup(fcinfo, &call))
        PG_RETURN_POINTER(hit);
    PG_RETURN_POINTER(run_miss(call));
}

/*
 * tusk_cached_rows' state between calls. A hit (or a value built whole)
 * hands out the elements of `value`. A miss streams the query's rows from
 * a cursor and keeps a copy of each, to store the value once the last row
 * has been read (a caller that stops early stores nothing). What the
 * store needs (fill clock, write mark, epoch) is taken when the stream
 * opens, and the recorder is active during every fetch.
 */
struct CachedRows {
    Jsonb *value;
    uint32 count;
    uint32 next;

    RowStream *stream;
    CachedCall call;
    MissStart start;
    uint32 absorbed; /* how many of the stream's slots an enclosing fill has taken (+1 once anything was) */
    Jsonb **kept; /* the rows read so far, copied here */
    uint64 kept_count;
    uint64 kept_cap;
};

/* Starts streaming a miss: the query's cursor, opened under the read-only rules. */
void start_miss_stream(CachedRows *rows, MemoryContext context)
{
    rows->stream = row_stream_create(context, "tusk_cached_rows");
    char *sql = text_to_cstring(rows->call.query);
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    int64_t start = metrics_clock_ns();
    Datum *values;
    char *nulls;
    SPIPlanPtr plan = prepare_read_only(sql, rows->call.params, "tusk_cached_rows", &values, &nulls);
    /* Before the cursor's snapshot, after the statement's own analysis; in the stream's context, not SPI's. */
    MemoryContext spi = MemoryContextSwitchTo(context);
    miss_begin(&rows->start, rows->call.key.l1.hash);
    MemoryContextSwitchTo(spi);
    PG_TRY();
    {
        row_stream_open(rows->stream, plan, values, nulls, true);
    }
    PG_FINALLY();
    {
        fill_activate(rows->start.recorder.parent);
    }
    PG_END_TRY();
    rows->stream->query_ns = metrics_clock_ns() - start;
    SPI_finish();
}

/* The next streamed row, with the miss's recorder active while the cursor runs. */
bool next_streamed_row(CachedRows *rows, Datum *row)
{
    FillRecorder *previous = fill_activate(&rows->start.recorder);
    bool more = false;
    PG_TRY();
    {
        more = row_stream_next(rows->stream, row);
    }
    PG_FINALLY();
    {
        fill_activate(previous);
    }
    PG_END_TRY();
    /* A fill around this stream depends on what the stream read too (handed over when that grows). */
    const FillRecorder &mine = rows->start.recorder;
    uint32 state = (mine.count & 0xffff) | (uint32(mine.flags & 0xff) << 16) | (mine.too_many ? 1u << 29 : 0) |
                   (mine.private_data ? 1u << 30 : 0) | (1u << 31);
    if (previous != nullptr && state != rows->absorbed) {
        fill_absorb(previous, &mine);
        rows->absorbed = state;
    }
    return more;
}

/* The miss's rows, all read: one array, as tusk_cached stores it. */
Jsonb *kept_rows_as_value(CachedRows *rows)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_ARRAY, nullptr);
    for (uint64 i = 0; i < rows->kept_count; i++) {
        JsonbValue element;
        element.type = jbvBinary;
        element.val.binary.data = &rows->kept[i]->root;
        element.val.binary.len = int(VARSIZE(rows->kept[i]) - VARHDRSZ);
        pushJsonbValue(&state, WJB_ELEM, &element);
    }
    return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, nullptr));
}

/*
 * tusk_cached, one element of the value per call. A hit is handed out from
 * the stored value, never rebuilt as a set; a miss streams from a cursor
 * (except under a WITH HOLD cursor, which outlives the transaction and
 * ours with it: then the value is built first).
 */
Datum cached_rows(FunctionCallInfo fcinfo)
{
    FuncCallContext *call;
    if (SRF_IS_FIRSTCALL()) {
        call = SRF_FIRSTCALL_INIT();
        ReturnSetInfo *info = value_per_call_info(fcinfo, "tusk_cached_rows");
        MemoryContext previous = MemoryContextSwitchTo(call->multi_call_memory_ctx);
        auto *rows = static_cast<CachedRows *>(palloc0(sizeof(CachedRows)));
        struct varlena *hit = cached_lookup(fcinfo, &rows->call);
        if (hit == nullptr && !caller_is_holdable()) {
            /* The key is needed again after the last row: keep it here, not in the caller's argument. */
            rows->call.key.user_key = reinterpret_cast<text *>(PG_DETOAST_DATUM_COPY(PointerGetDatum(rows->call.key.user_key)));
            start_miss_stream(rows, call->multi_call_memory_ctx);
            row_stream_watch(rows->stream, info->econtext);
        } else {
            rows->value = DatumGetJsonbP(PointerGetDatum(hit != nullptr ? hit : run_miss(rows->call)));
            if (JB_ROOT_IS_ARRAY(rows->value) && !JB_ROOT_IS_SCALAR(rows->value))
                rows->count = JB_ROOT_COUNT(rows->value);
        }
        MemoryContextSwitchTo(previous);
        call->user_fctx = rows;
    }
    call = SRF_PERCALL_SETUP();
    auto *rows = static_cast<CachedRows *>(call->user_fctx);
    if (rows->stream == nullptr) {
        if (rows->next < rows->count) {
            JsonbValue *element = getIthJsonbValueFromContainer(&rows->value->root, rows->next++);
            SRF_RETURN_NEXT(call, JsonbPGetDatum(JsonbValueToJsonb(element)));
        }
        SRF_RETURN_DONE(call);
    }
    Datum row;
    if (next_streamed_row(rows, &row)) {
        MemoryContext previous = MemoryContextSwitchTo(call->multi_call_memory_ctx);
        if (rows->kept_count == rows->kept_cap) {
            rows->kept_cap = rows->kept_cap == 0 ? 64 : rows->kept_cap * 2;
            rows->kept = static_cast<Jsonb **>(rows->kept == nullptr
                                                   ? palloc(sizeof(Jsonb *) * rows->kept_cap)
                                                   : repalloc(rows->kept, sizeof(Jsonb *) * rows->kept_cap));
        }
        rows->kept[rows->kept_count++] = DatumGetJsonbPCopy(row);
        MemoryContextSwitchTo(previous);
        SRF_RETURN_NEXT(call, row);
    }
    /* The last row has been read: store the whole value, as tusk_cached would have. */
    MemoryContext previous = MemoryContextSwitchTo(call->multi_call_memory_ctx);
    store_miss(rows->call, kept_rows_as_value(rows), rows->start);
    MemoryContextSwitchTo(previous);
    SRF_RETURN_DONE(call);
}

Datum cache_get(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    int64 now = GetCurrentTimestamp();
    /* A value has no query behind it: its own pending value first (a set, or a fill after a write). */
    if (struct varlena *mine = pending_get(key.l1, nullptr, now))
        PG_RETURN_POINTER(mine);
    if (struct varlena *hit = shared_lookup(key, nullptr, now))
        PG_RETURN_POINTER(hit);
    builtin_count(Builtin::CacheMisses);
    PG_RETURN_NULL();
}

/* The relations of depends_on (a regclass[] without NULLs), palloc'd; *count set. */
Oid *dependency_relations(ArrayType *depends_on, int *count)
{
    *count = 0;
    if (depends_on == nullptr)
        return nullptr;
    if (ARR_NDIM(depends_on) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("depends_on must be a one-dimensional array")));
    Datum *elements;
    bool *nulls;
    int n;
    deconstruct_array(depends_on, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT, &elements, &nulls, &n);
    Oid *out = static_cast<Oid *>(palloc(sizeof(Oid) * (n + 1)));
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("depends_on must not contain NULL")));
        out[i] = DatumGetObjectId(elements[i]);
        require_relation(out[i]);
    }
    *count = n;
    return out;
}

Datum cache_set(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    require_arg(fcinfo, 1, "value");
    require_arg(fcinfo, 2, "ttl");
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    Jsonb *value = PG_GETARG_JSONB_P(1);
    int64 ttl = ttl_micros(PG_GETARG_INTERVAL_P(2));
    int count = 0;
    Oid *relations = dependency_relations(PG_NARGS() > 3 && !PG_ARGISNULL(3) ? PG_GETARG_ARRAYTYPE_P(3) : nullptr,
                                          &count);
    /* A value set by hand has no query behind it: tusk_cached treats it as a miss. */
    core::Fingerprint none;
    Provenance from;
    size_t length = 0;
    from.validity.bytes = explicit_validity(relations, count, &length);
    from.validity.length = length;
    from.epoch = explicit_epoch(key.l1.hash);
    from.own_writes = false;
    from.computed_at = current_write_mark();
    from.explicit_value = true; /* published when the transaction commits, dropped if it rolls back */
    bool stored = cache_store(key, none, value, ttl, GetCurrentTimestamp(), from);
    PG_RETURN_BOOL(stored);
}

/*
 * Delete, invalidate and flush remove in this order: L3 (the caller's
 * transaction), then L2, then bump the epoch, then L1. A reader that read
 * L2 before its removal read the epoch before the bump, so its copy into
 * L1 either lands before the L1 removal (and is removed) or sees the bump
 * under the partition lock and is refused; a fill that stores into L2
 * after the removal checks the epoch after its SET and takes it back.
 */
Datum cache_delete(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    const uint64_t *bumped = &key.l1.hash;
    pending_note_invalidation(bumped); /* no value of the key computed before this may reach L3 */
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete(key.l1, &why);
    bool in_l3 = l3_removed(l3_result, why, "the key was") > 0;
    bool pending = pending_forget(key.l1);
    bool in_l2 = false;
    if (l2_enabled()) {
        int removed = l2_delete(key.l2_name());
        if (removed < 0)
            warn_l2_unreachable("the key was");
        in_l2 = removed > 0;
    }
    pending_note_invalidation(bumped);
    bool in_l1 = l1_delete(key.l1);
    PG_RETURN_BOOL(pending || in_l1 || in_l2 || in_l3);
}

Datum cache_invalidate(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "prefix");
    text *user_prefix = PG_GETARG_TEXT_PP(0);
    EncodedKey prefix = encode_user_key(user_prefix, true);
    pending_note_invalidation(nullptr);
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete_prefix(prefix, &why);
    uint64 in_l3 = l3_removed(l3_result, why, "the keys were");
    uint64 pending = pending_forget_prefix(prefix.bytes, prefix.length);
    uint64 in_l2 = 0;
    if (l2_enabled())
        in_l2 = remove_from_l2(l2_prefix_for(VARDATA_ANY(user_prefix), VARSIZE_ANY_EXHDR(user_prefix)),
                               "the keys were");
    pending_note_invalidation(nullptr);
    uint64 in_l1 = l1_delete_prefix(prefix.bytes, prefix.length);
    /* A key cached in several tiers counts once: report the largest tier's count. */
    PG_RETURN_INT64(int64(pending + std::max({in_l1, in_l2, in_l3})));
}

Datum cache_flush(FunctionCallInfo)
{
    require_preloaded();
    pending_note_invalidation(nullptr);
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete_all(&why);
    uint64 in_l3 = l3_removed(l3_result, why, "the cache was");
    uint64 pending = pending_forget_prefix(nullptr, 0);
    uint64 in_l2 = l2_enabled() ? remove_from_l2(l2_prefix_of_everything(), "the cache was") : 0;
    pending_note_invalidation(nullptr);
    uint64 in_l1 = l1_delete_prefix(nullptr, 0);
    /* A key cached in several tiers counts once: report the largest tier's count. */
    PG_RETURN_INT64(int64(pending + std::max({in_l1, in_l2, in_l3})));
}

Datum cache_invalidate_relation(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "relation");
    Oid relation = PG_GETARG_OID(0);
    require_relation(relation);
    /* Whoever could change the relation could retire its values by writing: the same roles may do it directly. */
    if (!pg_class_ownercheck(relation, GetUserId()) &&
        pg_class_aclmask(relation, GetUserId(), ACL_INSERT | ACL_UPDATE | ACL_DELETE | ACL_TRUNCATE, ACLMASK_ANY) == 0)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied to invalidate the cached values of relation %s", get_rel_name(relation)),
                        errhint("Its owner, or a role that may INSERT, UPDATE, DELETE or TRUNCATE it, may.")));
    invalidate_relation_now(relation);
    PG_RETURN_VOID();
}

Datum cache_l3_wait(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "timeout");
    int64 micros = positive_interval_micros(PG_GETARG_INTERVAL_P(0), "timeout", nullptr);
    PG_RETURN_BOOL(l3_queue_wait(micros / 1000));
}

/*
 * tusk_cache_entry: where key is cached for the current role, its TTL left
 * and what it depends on. Like any lookup, it finds only what may be
 * served: a stale entry is gone from every row.
 */
Datum cache_entry(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    int64 now = GetCurrentTimestamp();
    auto emit = [&](const char *tier, int64 expires_at, const uint8_t *validity, size_t length) {
        uint64_t fill_clock = 0;
        uint16_t flags = 0;
        uint32_t count = 0;
        bool decoded = validity_describe(validity, length, &fill_clock, &flags, &count);
        Datum values[5];
        bool nulls[5] = {false, expires_at <= 0, !decoded, !decoded, !decoded};
        values[0] = CStringGetTextDatum(tier);
        values[1] = expires_at > 0 ? DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(expires_at),
                                                         TimestampTzGetDatum(now))
                                   : (Datum) 0;
        values[2] = Int32GetDatum(int32(count));
        values[3] = BoolGetDatum((flags & core::kValidityUntracked) != 0 || (flags & core::kValidityNotTracked) != 0);
        values[4] = Int64GetDatum(int64(fill_clock));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    };
    int64 expires_at = 0;
    Validity validity{nullptr, 0};
    if (struct varlena *v = l1_get(key.l1, nullptr, now, &expires_at, &validity.bytes, &validity.length)) {
        emit("l1", expires_at, validity.bytes, validity.length);
        pfree(v);
    }
    core::Fingerprint found;
    uint8_t *stored_validity = nullptr;
    size_t stored_length = 0;
    if (l2_enabled() &&
        l2_get(key.l2_name(), nullptr, now, &expires_at, &found, &stored_validity, &stored_length) != nullptr)
        emit("l2", expires_at, stored_validity, stored_length);
    bool settled;
    if (l3_get(key.l1, nullptr, now, &expires_at, &found, &settled, &stored_validity, &stored_length) != nullptr)
        emit("l3", expires_at, stored_validity, stored_length);
    return (Datum) 0;
}

Datum cache_stats(FunctionCallInfo fcinfo)
{
    require_preloaded();
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    core::L1Stats l1;
    l1_stats(l1);
    /* A database still at 0.1.0 (before ALTER EXTENSION UPDATE) reads the first 10 columns only. */
    Datum values[12];
    bool nulls[12] = {false};
    values[0] = CStringGetTextDatum("l1");
    values[1] = Int64GetDatum(int64(l1.entries));
    values[2] = Int64GetDatum(int64(l1.bytes));
    values[3] = Int64GetDatum(int64(l1.capacity_bytes));
    values[4] = Int64GetDatum(int64(l1.hits));
    values[5] = Int64GetDatum(int64(l1.misses));
    values[6] = Int64GetDatum(int64(l1.sets));
    values[7] = Int64GetDatum(int64(l1.evictions));
    values[8] = Int64GetDatum(int64(l1.expirations));
    values[9] = Int64GetDatum(0); /* L1 has no failure mode that is not an ERROR */
    /* Invalidations and waits are the server's, whatever tier the value would have come from: shown once. */
    values[10] = Int64GetDatum(int64(invalidation_count()));
    values[11] = Int64GetDatum(int64(flight_waits()));
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

    /* Redis does not tell cheaply how many of its keys are ours, nor which it evicted. */
    L2Stats l2;
    l2_stats(l2);
    bool l2_nulls[12] = {false, true, true, true, false, false, false, true, true, false, true, true};
    values[0] = CStringGetTextDatum("l2");
    values[4] = Int64GetDatum(int64(l2.hits));
    values[5] = Int64GetDatum(int64(l2.misses));
    values[6] = Int64GetDatum(int64(l2.sets));
    values[9] = Int64GetDatum(int64(l2.errors));
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, l2_nulls);

    /* L3 has no capacity and never evicts: rows leave by TTL (expirations) or by delete. */
    L3Stats l3;
    int64 l3_entries, l3_bytes;
    l3_stats(l3, &l3_entries, &l3_bytes);
    bool l3_nulls[12] = {false, l3_entries < 0, l3_bytes < 0, true, false, false, false, false, false, false,
                         true, true};
    values[0] = CStringGetTextDatum("l3");
    values[1] = Int64GetDatum(l3_entries);
    values[2] = Int64GetDatum(l3_bytes);
    values[4] = Int64GetDatum(int64(l3.hits));
    values[5] = Int64GetDatum(int64(l3.misses));
    values[6] = Int64GetDatum(int64(l3.sets));
    values[7] = Int64GetDatum(0);
    values[8] = Int64GetDatum(int64(l3.expirations));
    values[9] = Int64GetDatum(int64(l3.errors));
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, l3_nulls);
    return (Datum) 0;
}

Datum cache_stats_reset(FunctionCallInfo)
{
    require_preloaded();
    l1_reset_counters();
    l2_reset_counters();
    l3_reset_counters();
    invalidation_reset_count();
    flight_reset_waits();
    PG_RETURN_VOID();
}

}  // namespace

}  // namespace tusk

extern "C" {

Datum tusk_cached(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCachedTime, [fcinfo] { return tusk::cached(fcinfo); });
}

Datum tusk_cached_rows(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cached_rows(fcinfo); });
}

Datum tusk_cache_get(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCacheGetTime, [fcinfo] { return tusk::cache_get(fcinfo); });
}

Datum tusk_cache_set(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCacheSetTime, [fcinfo] { return tusk::cache_set(fcinfo); });
}

Datum tusk_cache_delete(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCacheDeleteTime, [fcinfo] { return tusk::cache_delete(fcinfo); });
}

Datum tusk_cache_invalidate(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCacheInvalidateTime, [fcinfo] { return tusk::cache_invalidate(fcinfo); });
}

Datum tusk_cache_flush(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskCacheFlushTime, [fcinfo] { return tusk::cache_flush(fcinfo); });
}

Datum tusk_cache_stats(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cache_stats(fcinfo); });
}

Datum tusk_cache_stats_reset(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cache_stats_reset(fcinfo); });
}

Datum tusk_cache_invalidate_relation(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cache_invalidate_relation(fcinfo); });
}

Datum tusk_cache_entry(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cache_entry(fcinfo); });
}

Datum tusk_cache_l3_wait(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::cache_l3_wait(fcinfo); });
}

}
