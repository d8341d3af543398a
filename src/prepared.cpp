/*
 * prepared.cpp: tusk_query and tusk_query_rows, which run one statement
 * (reads and writes) from a plan cache, and the tusk_prepared view of it.
 *
 * The plan cache is this backend's own (no shared memory, no locks): a
 * dynahash keyed by the XXH3 hash of the SQL text (the text itself is
 * compared before a hit is used) and a list in least-recently-used order,
 * holding at most tusk.plan_cache_size statements. Each statement is
 * analysed once as PREPARE without parameter types does (the types of its
 * $n inferred), then prepared with those types and kept (SPI_keepplan), so
 * a repeated call skips parsing, analysis and, once PostgreSQL settles on
 * a generic plan, planning. tusk_query_rows reads through a cursor and
 * keeps its own plan of a text (made for fetching the first rows fast).
 *
 * A statement is used only by the role that prepared it and under the
 * search_path it was prepared in (the types of its $n, and so the input
 * functions that read params, were resolved there): otherwise, or when
 * PostgreSQL has invalidated its plan (a schema change), the text is
 * prepared again and its types inferred again. Privileges are checked at
 * every execution.
 *
 * A statement that is executing (calls nest: a statement may call
 * tusk_query) is never freed under its caller: one evicted while in use is
 * taken out of the hash and freed by the next call that finds it idle.
 *
 * Plain C-style code: no C++ object with a destructor lives in these frames.
 */
extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tusk_query);
PG_FUNCTION_INFO_V1(tusk_query_rows);
PG_FUNCTION_INFO_V1(tusk_prepared_list);
PG_FUNCTION_INFO_V1(tusk_prepared_reset);
}

#include <xxhash.h>

#include "guard.hpp"
#include "sql_args.hpp"
#include "metrics.hpp"
#include "prepared.hpp"
#include "query_runner.hpp"
#include "row_stream.hpp"

namespace tusk {

namespace {

int plan_cache_size = 256; /* tusk.plan_cache_size */

struct PreparedStatement {
    uint64 hash;         /* XXH3 of the SQL text, and whether it is read through a cursor */
    MemoryContext context; /* this struct and everything it points to, but the plan */
    char *sql;
    int sql_length;
    bool for_cursor;     /* prepared for tusk_query_rows (CURSOR_OPT_FAST_PLAN) */
    Oid role;            /* the role it was prepared as... */
    OverrideSearchPath *search_path; /* ...and the search_path its $n types were resolved in */
    SPIPlanPtr plan;     /* kept, unless transient */
    int param_count;
    Oid *param_types;
    TypeInput *inputs;   /* how to read each $n from JSON */
    int64 calls;
    TimestampTz prepared_at;
    TimestampTz last_used_at;
    int in_use;          /* executions of this statement running now */
    bool transient;      /* not cached: freed with the SPI connection that made it */
    bool doomed;         /* evicted while in use: out of the hash, freed once idle */
    dlist_node lru;      /* in `recent` (most recent first) or in `doomed` */
};

struct HashEntry {
    uint64 hash; /* dynahash key */
    PreparedStatement *statement;
};

HTAB *statements = nullptr;
dlist_head recent = DLIST_STATIC_INIT(recent);
dlist_head doomed = DLIST_STATIC_INIT(doomed);
int cached_count = 0;

/* ilist.h's dlist_container and dlist_foreach are C only (__builtin_types_compatible_p). */
PreparedStatement *statement_of(dlist_node *node)
{
    return reinterpret_cast<PreparedStatement *>(reinterpret_cast<char *>(node) - offsetof(PreparedStatement, lru));
}

/* Whether a cached statement may serve this call as it is. */
bool still_fits(PreparedStatement *statement)
{
    return statement->role == GetUserId() && OverrideSearchPathMatchesCurrent(statement->search_path) &&
           SPI_plan_is_valid(statement->plan);
}

void free_statement(PreparedStatement *statement)
{
    SPI_freeplan(statement->plan);
    MemoryContextDelete(statement->context);
}

/* Takes statement out of the cache; frees it now or, when in use, once idle. */
void evict(PreparedStatement *statement)
{
    dlist_delete(&statement->lru);
    cached_count--;
    hash_search(statements, &statement->hash, HASH_REMOVE, nullptr);
    if (statement->in_use == 0) {
        free_statement(statement);
    } else {
        statement->doomed = true;
        dlist_push_tail(&doomed, &statement->lru);
    }
}

/* Frees the doomed statements whose executions have ended. */
void release_doomed()
{
    for (dlist_node *node = doomed.head.next, *next; node != &doomed.head; node = next) {
        next = node->next;
        PreparedStatement *statement = statement_of(node);
        if (statement->in_use == 0) {
            dlist_delete(&statement->lru);
            free_statement(statement);
        }
    }
}

void enforce_size(int limit)
{
    while (cached_count > limit) {
        evict(statement_of(dlist_tail_node(&recent)));
    }
}

/* Refuses what PREPARE refuses: utility statements. */
void check_preparable(CachedPlanSource *source, const char *function)
{
    ListCell *lc;
    foreach (lc, source->query_list) {
        Query *q = lfirst_node(Query, lc);
        if (q->commandType == CMD_UTILITY)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("%s runs SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES and TABLE statements", function),
                     IsA(q->utilityStmt, CreateTableAsStmt)
                         ? errdetail("The statement creates a table (SELECT INTO or CREATE TABLE AS), which cannot "
                                     "be prepared.")
                         : errdetail("The statement is %s, which cannot be prepared.",
                                     GetCommandTagName(source->commandTag)),
                     errhint("Run other statements directly.")));
    }
}

/*
 * Fills statement (whose context, sql and hash are set) from sql: analyses
 * it, prepares it with the inferred types. Runs inside SPI.
 */
void prepare_statement(PreparedStatement *statement, const char *sql, const char *function)
{
    AnalysedStatement analysed = analyse_statement(sql, function);
    check_preparable(analysed.source, function);
    /* As PREPARE plans (parallel plans allowed); for a cursor, as DECLARE CURSOR plans. */
    int options = statement->for_cursor ? CURSOR_OPT_FAST_PLAN : CURSOR_OPT_PARALLEL_OK;
    SPIPlanPtr plan = SPI_prepare_cursor(sql, analysed.count, analysed.types, options);
    if (plan == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare query: %s", SPI_result_code_string(SPI_result))));
    statement->param_count = analysed.count;
    int count = analysed.count;
    statement->param_types = static_cast<Oid *>(MemoryContextAlloc(statement->context, sizeof(Oid) * (count + 1)));
    statement->inputs = static_cast<TypeInput *>(MemoryContextAlloc(statement->context, sizeof(TypeInput) * (count + 1)));
    for (int i = 0; i < count; i++) {
        statement->param_types[i] = analysed.types[i];
        type_input_init(&statement->inputs[i], analysed.types[i], -1, statement->context);
    }
    statement->plan = plan;
    statement->role = GetUserId();
    statement->search_path = GetOverrideSearchPath(statement->context);
    statement->calls = 0;
    statement->prepared_at = statement->last_used_at = GetCurrentTimestamp();
    statement->in_use = 0;
    statement->doomed = false;
}

/*
 * The prepared statement for sql: from the cache, or prepared now (and
 * cached when tusk.plan_cache_size allows). Runs inside SPI.
 */
PreparedStatement *statement_for(text *sql_text, bool for_cursor, const char *function)
{
    release_doomed();
    if (cached_count > plan_cache_size) /* tusk.plan_cache_size was lowered */
        enforce_size(plan_cache_size < 0 ? 0 : plan_cache_size);
    const char *sql = VARDATA_ANY(sql_text);
    int length = int(VARSIZE_ANY_EXHDR(sql_text));
    if (length == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s needs a statement, got an empty string", function)));
    uint64 hash = XXH3_64bits_withSeed(sql, size_t(length), for_cursor ? 1 : 0);
    int64 calls_before = 0;

    if (plan_cache_size > 0) {
        if (statements == nullptr) {
            HASHCTL control;
            control.keysize = sizeof(uint64);
            control.entrysize = sizeof(HashEntry);
            statements = hash_create("tusk prepared statements", 64, &control, HASH_ELEM | HASH_BLOBS);
        }
        auto *entry = static_cast<HashEntry *>(hash_search(statements, &hash, HASH_FIND, nullptr));
        if (entry != nullptr) {
            PreparedStatement *statement = entry->statement;
            bool same_text = statement->sql_length == length && statement->for_cursor == for_cursor &&
                             memcmp(statement->sql, sql, length) == 0;
            if (same_text && still_fits(statement)) {
                dlist_move_head(&recent, &statement->lru);
                return statement;
            }
            if (same_text && statement->role == GetUserId())
                calls_before = statement->calls; /* prepared again below: the count goes on */
            evict(statement); /* or another text with the same hash: the newer one wins */
        }
    }

    /* Prepared in a context of its own; it joins the cache only once it is complete. */
    MemoryContext context = AllocSetContextCreate(plan_cache_size > 0 ? TopMemoryContext : CurrentMemoryContext,
                                                  "tusk prepared statement", ALLOCSET_SMALL_SIZES);
    PreparedStatement building;
    memset(&building, 0, sizeof building);
    building.hash = hash;
    building.context = context;
    building.sql = static_cast<char *>(MemoryContextAlloc(context, length + 1));
    memcpy(building.sql, sql, length);
    building.sql[length] = '\0';
    building.sql_length = length;
    building.for_cursor = for_cursor;
    building.transient = plan_cache_size <= 0;
    PG_TRY();
    {
        prepare_statement(&building, building.sql, function);
        if (!building.transient)
            SPI_keepplan(building.plan);
    }
    PG_CATCH();
    {
        MemoryContextDelete(context);
        PG_RE_THROW();
    }
    PG_END_TRY();

    building.calls = calls_before;
    auto *statement = static_cast<PreparedStatement *>(MemoryContextAlloc(context, sizeof building));
    *statement = building;
    if (statement->transient)
        return statement;
    enforce_size(plan_cache_size - 1);
    auto *entry = static_cast<HashEntry *>(hash_search(statements, &hash, HASH_ENTER, nullptr));
    entry->statement = statement;
    dlist_push_head(&recent, &statement->lru);
    cached_count++;
    return statement;
}

/* Forgets a transient statement (its plan goes with the SPI connection). */
void done_with(PreparedStatement *statement)
{
    if (statement->transient)
        MemoryContextDelete(statement->context);
}

/* Binds params to the statement's $n in the current memory context. */
void bind(PreparedStatement *statement, Jsonb *params, Datum **values, char **nulls)
{
    bind_params(params, statement->inputs, statement->param_count, values, nulls);
}

/* Records one execution of a statement (binding included) in the built-in metrics. */
void executed(PreparedStatement *statement, int64_t start)
{
    statement->calls++;
    statement->last_used_at = GetCurrentTimestamp();
    if (start != 0) {
        builtin_time_since(Builtin::DatabaseQueryTime, start);
        builtin_count(Builtin::DatabaseQueryCount);
    }
}

/* Runs statement with values/nulls, every row fetched; SPI_tuptable holds them. */
void execute(PreparedStatement *statement, Datum *values, char *nulls)
{
    int rc = SPI_execute_plan(statement->plan, values, nulls, false, 0);
    if (rc < 0)
        ereport(ERROR, (errmsg("tusk: could not run the statement: %s", SPI_result_code_string(rc))));
}

/*
 * tusk_query's work once it holds its statement: bind, run, render. Binding
 * and rendering run user code too (a domain's CHECK, a cast to json), which
 * may call tusk_query or tusk_prepared_reset: the caller keeps the statement
 * marked in use throughout.
 */
Jsonb *run_statement(PreparedStatement *statement, Jsonb *params, MemoryContext result_context)
{
    int64_t start = builtin_timer_start();
    Datum *values;
    char *nulls;
    bind(statement, params, &values, &nulls);
    execute(statement, values, nulls);
    executed(statement, start);
    MemoryContext spi = MemoryContextSwitchTo(result_context);
    Jsonb *rows = rows_as_array(SPI_tuptable, SPI_processed);
    MemoryContextSwitchTo(spi);
    return rows;
}

Datum query(FunctionCallInfo fcinfo)
{
    require_arg(fcinfo, 0, "sql");
    text *sql = PG_GETARG_TEXT_PP(0);
    Jsonb *params = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
    MemoryContext caller = CurrentMemoryContext;

    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    PreparedStatement *statement = statement_for(sql, false, "tusk_query");
    Jsonb *volatile rows = nullptr;
    statement->in_use++;
    PG_TRY();
    {
        rows = run_statement(statement, params, caller);
    }
    PG_FINALLY();
    {
        statement->in_use--;
    }
    PG_END_TRY();
    done_with(statement);
    SPI_finish();
    PG_RETURN_JSONB_P(rows);
}

/*
 * Opens the stream once its statement is held (see run_statement): the
 * statement's cursor; or, for a statement that returns no rows (INSERT
 * without RETURNING) or a caller that is a WITH HOLD cursor (whose rows
 * outlive the transaction, and the cursor with them: ours could not), runs
 * it to completion and keeps its rows.
 */
void open_stream(RowStream *stream, PreparedStatement *statement, Jsonb *params)
{
    int64_t start = metrics_clock_ns();
    Datum *values;
    char *nulls;
    bind(statement, params, &values, &nulls);
    auto *source = static_cast<CachedPlanSource *>(linitial(SPI_plan_get_plan_sources(statement->plan)));
    if (source->resultDesc == nullptr || caller_is_holdable()) {
        execute(statement, values, nulls);
        row_stream_keep(stream, source->resultDesc != nullptr ? SPI_processed : 0);
    } else {
        /* The portal keeps its own reference to the plan: evicting the statement later is safe. */
        row_stream_open(stream, statement->plan, values, nulls, false);
    }
    stream->query_ns = metrics_clock_ns() - start;
    statement->calls++;
    statement->last_used_at = GetCurrentTimestamp();
}

RowStream *start_stream(FunctionCallInfo fcinfo, MemoryContext context)
{
    require_arg(fcinfo, 0, "sql");
    text *sql = PG_GETARG_TEXT_PP(0);
    Jsonb *params = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);

    RowStream *stream = row_stream_create(context, "tusk_query_rows");

    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    PreparedStatement *statement = statement_for(sql, true, "tusk_query_rows");
    statement->in_use++;
    PG_TRY();
    {
        open_stream(stream, statement, params);
    }
    PG_FINALLY();
    {
        statement->in_use--;
    }
    PG_END_TRY();
    done_with(statement);
    SPI_finish();
    return stream;
}

Datum query_rows(FunctionCallInfo fcinfo)
{
    FuncCallContext *call;
    if (SRF_IS_FIRSTCALL()) {
        call = SRF_FIRSTCALL_INIT();
        ReturnSetInfo *info = value_per_call_info(fcinfo, "tusk_query_rows");
        RowStream *stream = start_stream(fcinfo, call->multi_call_memory_ctx);
        call->user_fctx = stream;
        row_stream_watch(stream, info->econtext);
    }
    call = SRF_PERCALL_SETUP();
    auto *stream = static_cast<RowStream *>(call->user_fctx);
    Datum row;
    if (row_stream_next(stream, &row))
        SRF_RETURN_NEXT(call, row);
    SRF_RETURN_DONE(call);
}

Datum prepared_list(FunctionCallInfo fcinfo)
{
    InitMaterializedSRF(fcinfo, 0);
    auto *info = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (dlist_node *node = recent.head.next; node != &recent.head; node = node->next) {
        PreparedStatement *statement = statement_of(node);
        /* Statements prepared by other roles (SET ROLE, SECURITY DEFINER) stay private. */
        if (!has_privs_of_role(GetUserId(), statement->role))
            continue;
        auto *source = static_cast<CachedPlanSource *>(linitial(SPI_plan_get_plan_sources(statement->plan)));
        Datum *types = static_cast<Datum *>(palloc(sizeof(Datum) * (statement->param_count + 1)));
        for (int i = 0; i < statement->param_count; i++)
            types[i] = ObjectIdGetDatum(statement->param_types[i]);
        Datum values[8];
        bool nulls[8] = {false, false, false, false, false, false, false, false};
        values[0] = PointerGetDatum(cstring_to_text_with_len(statement->sql, statement->sql_length));
        values[1] = PointerGetDatum(construct_array(types, statement->param_count, REGTYPEOID, sizeof(Oid), true,
                                                    TYPALIGN_INT));
        values[2] = Int64GetDatum(statement->calls);
        values[3] = Int64GetDatum(source->num_generic_plans);
        values[4] = Int64GetDatum(source->num_custom_plans);
        values[5] = TimestampTzGetDatum(statement->prepared_at);
        values[6] = TimestampTzGetDatum(statement->last_used_at);
        values[7] = BoolGetDatum(statement->for_cursor);
        tuplestore_putvalues(info->setResult, info->setDesc, values, nulls);
    }
    return (Datum) 0;
}

Datum prepared_reset(FunctionCallInfo)
{
    int64 count = cached_count;
    release_doomed();
    enforce_size(0);
    PG_RETURN_INT64(count);
}

}  // namespace

void prepared_define_gucs()
{
    DefineCustomIntVariable("tusk.plan_cache_size",
                            "Most statements tusk_query keeps prepared in each session.",
                            "The least recently used statement is dropped first; 0 prepares every call anew.",
                            &plan_cache_size, 256, 0, 100000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

}  // namespace tusk

extern "C" {

Datum tusk_query(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::TuskQueryTime, [fcinfo] { return tusk::query(fcinfo); });
}

Datum tusk_query_rows(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::query_rows(fcinfo); });
}

Datum tusk_prepared_list(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::prepared_list(fcinfo); });
}

Datum tusk_prepared_reset(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::prepared_reset(fcinfo); });
}

}
