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

PG_FUNCTION_INFO_V1(tusk_cached);
PG_FUNCTION_INFO_V1(tusk_cached_rows);
PG_FUNCTION_INFO_V1(tusk_cache_get);
PG_FUNCTION_INFO_V1(tusk_cache_set);
PG_FUNCTION_INFO_V1(tusk_cache_delete);
PG_FUNCTION_INFO_V1(tusk_cache_invalidate);
PG_FUNCTION_INFO_V1(tusk_cache_flush);
PG_FUNCTION_INFO_V1(tusk_cache_stats);
PG_FUNCTION_INFO_V1(tusk_cache_stats_reset);
}

#include <algorithm>

#include "core/cache_key.hpp"
#include "core/ttl.hpp"
#include "guard.hpp"
#include "sql_args.hpp"
#include "l1_cache.hpp"
#include "l2_cache.hpp"
#include "l3_cache.hpp"
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

int64 ttl_micros(Interval *ttl)
{
    int64 micros;
    if (core::interval_to_ttl(ttl->month, ttl->day, ttl->time, micros) != core::TtlStatus::Ok)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("ttl must be greater than zero"),
                        errhint("Use an interval such as '30s', '5 min' or '1 day'.")));
    return micros;
}

/*
 * What produced a value: the query text, its params, the search_path its
 * names were resolved in, and the settings that change how values are read
 * and rendered (TimeZone, DateStyle, IntervalStyle).
 */
core::Fingerprint query_fingerprint(text *query, Jsonb *params)
{
    core::FingerprintBuilder builder;
    builder.add(VARDATA_ANY(query), VARSIZE_ANY_EXHDR(query));
    if (params != nullptr)
        builder.add(VARDATA_ANY(params), VARSIZE_ANY_EXHDR(params));
    else
        builder.add_null();
    const char *path = namespace_search_path != nullptr ? namespace_search_path : "";
    builder.add(path, strlen(path));
    const char *zone = session_timezone != nullptr ? pg_get_timezone_name(session_timezone) : "";
    builder.add(zone, strlen(zone));
    const int styles[3] = {DateStyle, DateOrder, IntervalStyle};
    builder.add(styles, sizeof styles);
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

/*
 * Copies a lower tier's hit into the tiers above it (L1; and L2 when the
 * hit came from L3) with its remaining TTL.
 */
void copy_up(const CacheKey &key, const core::Fingerprint &fingerprint, Jsonb *value,
             int64 expires_at, int64 now, bool to_l2)
{
    if (expires_at <= now)
        return;
    auto *raw = reinterpret_cast<struct varlena *>(value);
    if (l1_accepts(key.l1.length, VARSIZE_ANY(raw)))
        l1_put(key.l1, fingerprint, raw, expires_at, now);
    if (to_l2 && l2_enabled()) {
        size_t length = 0;
        char *encoded = l2_encode(fingerprint, value, &length);
        l2_put_encoded(key.l2_name(), encoded, length, core::remaining_ttl(expires_at, now));
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

/*
 * Looks key up in the shared tiers: L1, then L2, then L3. A lower tier's
 * hit is copied up, unless a delete, invalidate or flush ran meanwhile
 * (the hit may be what it removed) or, from L3, some transaction is
 * deleting or replacing the row: the hit is served, not spread.
 */
struct varlena *shared_lookup(const CacheKey &key, const core::Fingerprint *want, int64 now)
{
    int64_t start = builtin_timer_start();
    struct varlena *l1_hit = l1_get(key.l1, want, now, nullptr);
    tier_looked_up(start, Builtin::CacheL1Time, Builtin::CacheL1Hits, l1_hit != nullptr);
    if (l1_hit != nullptr)
        return l1_hit;
    uint64 epoch = l3_invalidation_epoch();
    int64 expires_at;
    core::Fingerprint found;
    if (l2_enabled()) {
        start = builtin_timer_start();
        Jsonb *hit = l2_get(key.l2_name(), want, now, &expires_at, &found);
        tier_looked_up(start, Builtin::CacheL2Time, Builtin::CacheL2Hits, hit != nullptr);
        if (hit != nullptr) {
            if (l3_invalidation_epoch() == epoch)
                copy_up(key, found, hit, expires_at, now, false);
            return reinterpret_cast<struct varlena *>(hit);
        }
    }
    bool settled = false;
    start = builtin_timer_start();
    Jsonb *hit = l3_get(key.l1, want, now, &expires_at, &found, &settled);
    if (l3_enabled())
        tier_looked_up(start, Builtin::CacheL3Time, Builtin::CacheL3Hits, hit != nullptr);
    if (hit != nullptr) {
        if (settled && l3_invalidation_epoch() == epoch)
            copy_up(key, found, hit, expires_at, now, true);
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

/*
 * Stores in L1 and L2 now and in L3 at commit, or in every tier at commit
 * when this transaction has written data. True when at least one tier keeps
 * (or will keep) the value. epoch is l3_invalidation_epoch() from before
 * the value was computed; explicit_value: it came from tusk_cache_set.
 */
bool cache_store(const CacheKey &key, const core::Fingerprint &fingerprint, Jsonb *value,
                 int64 ttl, int64 now, uint64 epoch, bool explicit_value)
{
    int64 expires_at = core::expiry_time(now, ttl);
    auto *raw = reinterpret_cast<struct varlena *>(value);
    bool l1_keeps = l1_accepts(key.l1.length, VARSIZE_ANY(raw));
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
    char *l2_value = l2_on ? l2_encode(fingerprint, value, &l2_length) : nullptr;
    if (transaction_has_written()) {
        /* Written to L3 when the transaction commits, then to L1 and L2. */
        pending_put(key.l1, fingerprint, raw, expires_at, epoch, explicit_value, l2_key, l2_value,
                    l2_length);
        return true;
    }
    bool stored = l1_keeps && l1_put(key.l1, fingerprint, raw, expires_at, now);
    if (l2_on && l2_put_encoded(l2_key, l2_value, l2_length, ttl))
        stored = true;
    if (l3_on) {
        /* Written to L3 when this transaction commits, in one batch with its other fills. */
        pending_put_l3(key.l1, fingerprint, raw, expires_at, epoch, explicit_value);
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

/*
 * Stores a miss's rows, computed by a query that started reading after
 * l3_invalidation_epoch() was `epoch`. Under REPEATABLE READ and
 * SERIALIZABLE the rows come from the snapshot the transaction began with,
 * which may predate writes (and cache invalidations) committed since: such
 * rows are returned, never stored.
 */
void store_miss(const CachedCall &call, Jsonb *rows, uint64 epoch)
{
    if (!IsolationUsesXactSnapshot())
        cache_store(call.key, call.fingerprint, rows, call.ttl, GetCurrentTimestamp(), epoch, false);
}

/* A miss: runs the query and stores its rows. */
Jsonb *run_miss(const CachedCall &call)
{
    char *sql = text_to_cstring(call.query);
    Jsonb *params = call.params;
    uint64 epoch = l3_invalidation_epoch(); /* before the query reads anything */
    int64_t query_start = builtin_timer_start();
    Jsonb *rows = pg_call([sql, params] { return run_query_as_jsonb(sql, params); });
    if (query_start != 0) {
        builtin_time_since(Builtin::DatabaseQueryTime, query_start);
        builtin_count(Builtin::DatabaseQueryCount);
    }
    store_miss(call, rows, epoch);
    return rows;
}

Datum cached(FunctionCallInfo fcinfo)
{
    CachedCall call;
    if (struct varlena *hit = cached_lookup(fcinfo, &call))
        PG_RETURN_POINTER(hit);
    PG_RETURN_JSONB_P(run_miss(call));
}

/*
 * tusk_cached_rows' state between calls. A hit (or a value built whole)
 * hands out the elements of `value`. A miss streams the query's rows from
 * a cursor and keeps a copy of each, to store the value once the last row
 * has been read (a caller that stops early stores nothing).
 */
struct CachedRows {
    Jsonb *value;
    uint32 count;
    uint32 next;

    RowStream *stream;
    CachedCall call;
    uint64 epoch;
    Jsonb **kept; /* the rows read so far, copied here */
    uint64 kept_count;
    uint64 kept_cap;
};

/* Starts streaming a miss: the query's cursor, opened under the read-only rules. */
void start_miss_stream(CachedRows *rows, MemoryContext context)
{
    rows->stream = row_stream_create(context, "tusk_cached_rows");
    rows->epoch = l3_invalidation_epoch(); /* before the query reads anything */
    char *sql = text_to_cstring(rows->call.query);
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    int64_t start = metrics_clock_ns();
    Datum *values;
    char *nulls;
    SPIPlanPtr plan = prepare_read_only(sql, rows->call.params, "tusk_cached_rows", &values, &nulls);
    row_stream_open(rows->stream, plan, values, nulls, true);
    rows->stream->query_ns = metrics_clock_ns() - start;
    SPI_finish();
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
            rows->value = hit != nullptr ? DatumGetJsonbP(PointerGetDatum(hit)) : run_miss(rows->call);
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
    if (row_stream_next(rows->stream, &row)) {
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
    store_miss(rows->call, kept_rows_as_value(rows), rows->epoch);
    SRF_RETURN_DONE(call);
}

Datum cache_get(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    int64 now = GetCurrentTimestamp();
    /* A value has no query behind it: its own pending value first, then the shared tiers. */
    if (transaction_has_written()) {
        if (struct varlena *mine = pending_get(key.l1, nullptr, now))
            PG_RETURN_POINTER(mine);
    }
    if (struct varlena *hit = shared_lookup(key, nullptr, now))
        PG_RETURN_POINTER(hit);
    builtin_count(Builtin::CacheMisses);
    PG_RETURN_NULL();
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
    /* A value set by hand has no query behind it: tusk_cached treats it as a miss. */
    core::Fingerprint none;
    bool stored = cache_store(key, none, value, ttl, GetCurrentTimestamp(), l3_invalidation_epoch(), true);
    PG_RETURN_BOOL(stored);
}

Datum cache_delete(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "key");
    CacheKey key = cache_key(PG_GETARG_TEXT_PP(0));
    /* First the epoch (no value computed before this may be copied up or reach L3), then L3. */
    pending_note_invalidation();
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete(key.l1, &why);
    bool in_l3 = l3_removed(l3_result, why, "the key was") > 0;
    bool pending = pending_forget(key.l1);
    bool in_l1 = l1_delete(key.l1);
    bool in_l2 = false;
    if (l2_enabled()) {
        int removed = l2_delete(key.l2_name());
        if (removed < 0)
            warn_l2_unreachable("the key was");
        in_l2 = removed > 0;
    }
    PG_RETURN_BOOL(pending || in_l1 || in_l2 || in_l3);
}

Datum cache_invalidate(FunctionCallInfo fcinfo)
{
    require_preloaded();
    require_arg(fcinfo, 0, "prefix");
    text *user_prefix = PG_GETARG_TEXT_PP(0);
    EncodedKey prefix = encode_user_key(user_prefix, true);
    pending_note_invalidation();
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete_prefix(prefix, &why);
    uint64 in_l3 = l3_removed(l3_result, why, "the keys were");
    uint64 pending = pending_forget_prefix(prefix.bytes, prefix.length);
    uint64 in_l1 = l1_delete_prefix(prefix.bytes, prefix.length);
    uint64 in_l2 = 0;
    if (l2_enabled())
        in_l2 = remove_from_l2(l2_prefix_for(VARDATA_ANY(user_prefix), VARSIZE_ANY_EXHDR(user_prefix)),
                               "the keys were");
    /* A key cached in several tiers counts once: report the largest tier's count. */
    PG_RETURN_INT64(int64(pending + std::max({in_l1, in_l2, in_l3})));
}

Datum cache_flush(FunctionCallInfo)
{
    require_preloaded();
    pending_note_invalidation();
    L3Refusal why = L3Refusal::None;
    int64 l3_result = l3_delete_all(&why);
    uint64 in_l3 = l3_removed(l3_result, why, "the cache was");
    uint64 pending = pending_forget_prefix(nullptr, 0);
    uint64 in_l1 = l1_delete_prefix(nullptr, 0);
    uint64 in_l2 = l2_enabled() ? remove_from_l2(l2_prefix_of_everything(), "the cache was") : 0;
    /* A key cached in several tiers counts once: report the largest tier's count. */
    PG_RETURN_INT64(int64(pending + std::max({in_l1, in_l2, in_l3})));
}

Datum cache_stats(FunctionCallInfo fcinfo)
{
    require_preloaded();
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    core::L1Stats l1;
    l1_stats(l1);
    Datum values[10];
    bool nulls[10] = {false};
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
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

    /* Redis does not tell cheaply how many of its keys are ours, nor which it evicted. */
    L2Stats l2;
    l2_stats(l2);
    bool l2_nulls[10] = {false, true, true, true, false, false, false, true, true, false};
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
    bool l3_nulls[10] = {false, l3_entries < 0, l3_bytes < 0, true, false, false, false, false, false, false};
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

}
