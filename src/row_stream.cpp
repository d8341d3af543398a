/*
 * row_stream.cpp: a statement's rows rendered as jsonb objects, all at
 * once (rows_as_array) or a batch at a time through an SPI cursor that
 * outlives the SPI connection that opened it (RowStream). The cursor is a
 * portal of the current transaction: it is closed when the last row has
 * been read, when the caller of the set-returning function stops early
 * (an ExprContext callback), or by PostgreSQL at the end of the
 * (sub)transaction that opened it. Backend-local.
 *
 * Plain C-style code: no C++ object with a destructor lives in these frames.
 */
#include "row_stream.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "tcop/pquery.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
}

#include "metrics.hpp"
#include "query_runner.hpp"

namespace tusk {

namespace {

constexpr long kFetchFirst = 16;
constexpr long kFetchMax = 1024;

/*
 * Rows as jsonb objects, rendered by to_jsonb() of the whole row, as
 * tusk_cached renders them. The row type is blessed so that to_jsonb can
 * find its column names.
 */
struct RowRenderer {
    TupleDesc desc;
    FmgrInfo to_jsonb;
};

void row_renderer_init(RowRenderer *renderer, TupleDesc desc)
{
    renderer->desc = BlessTupleDesc(CreateTupleDescCopy(desc));
    fmgr_info(F_TO_JSONB, &renderer->to_jsonb);
    /* to_jsonb(anyelement) reads its argument's type from the call expression. */
    renderer->to_jsonb.fn_expr = reinterpret_cast<Node *>(
        makeFuncExpr(F_TO_JSONB, JSONBOID, list_make1(makeNullConst(RECORDOID, -1, InvalidOid)), InvalidOid,
                     InvalidOid, COERCE_EXPLICIT_CALL));
}

Datum render_row(RowRenderer *renderer, HeapTuple tuple)
{
    Datum row = heap_copy_tuple_as_datum(tuple, renderer->desc);
    return FunctionCall1(&renderer->to_jsonb, row);
}

/* The stream's portal, if it is still the one it opened. */
Portal stream_portal(RowStream *stream)
{
    Portal portal = SPI_cursor_find(stream->cursor);
    return portal == stream->portal ? portal : nullptr;
}

void close_stream(RowStream *stream)
{
    if (stream->cursor == nullptr)
        return;
    if (Portal portal = stream_portal(stream))
        SPI_cursor_close(portal);
    stream->cursor = nullptr;
}

void close_stream_callback(Datum arg)
{
    close_stream(reinterpret_cast<RowStream *>(DatumGetPointer(arg)));
}

struct Fetch {
    Portal portal;
    long count;
};

void fetch(void *arg)
{
    auto *f = static_cast<Fetch *>(arg);
    SPI_cursor_fetch(f->portal, true, f->count);
}

/* Fetches and renders the next rows of the stream's cursor. */
void fetch_rows(RowStream *stream)
{
    MemoryContextReset(stream->batch);
    stream->count = stream->next = 0;
    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    Portal portal = stream_portal(stream);
    if (portal == nullptr)
        ereport(ERROR, (errcode(ERRCODE_INVALID_CURSOR_STATE),
                        errmsg("the cursor of %s is gone", stream->function),
                        errdetail("It was closed, or opened in a subtransaction that was rolled back, while its "
                                  "rows were being read."),
                        errhint("Read all rows of %s within the savepoint that started reading them.",
                                stream->function)));
    int64_t start = metrics_clock_ns();
    Fetch f{portal, stream->fetch_size};
    if (stream->read_only)
        run_read_only(fetch, &f);
    else
        fetch(&f);
    stream->query_ns += metrics_clock_ns() - start;
    uint64 fetched = SPI_processed;
    if (uint64(stream->fetch_size) > fetched)
        stream->exhausted = true;
    stream->fetch_size = stream->fetch_size * 4 > kFetchMax ? kFetchMax : stream->fetch_size * 4;
    row_stream_keep(stream, fetched);
    SPI_finish();
}

}  // namespace

Jsonb *rows_as_array(SPITupleTable *tuptable, uint64 count)
{
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_ARRAY, nullptr);
    if (tuptable != nullptr && count > 0) {
        RowRenderer renderer;
        row_renderer_init(&renderer, tuptable->tupdesc);
        for (uint64 i = 0; i < count; i++) {
            Jsonb *row = DatumGetJsonbP(render_row(&renderer, tuptable->vals[i]));
            JsonbValue element;
            element.type = jbvBinary;
            element.val.binary.data = &row->root;
            element.val.binary.len = int(VARSIZE(row) - VARHDRSZ);
            pushJsonbValue(&state, WJB_ELEM, &element);
        }
    }
    return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_ARRAY, nullptr));
}

RowStream *row_stream_create(MemoryContext context, const char *function)
{
    auto *stream = static_cast<RowStream *>(MemoryContextAllocZero(context, sizeof(RowStream)));
    stream->context = context;
    stream->function = function;
    stream->batch = AllocSetContextCreate(context, "tusk row stream batch", ALLOCSET_DEFAULT_SIZES);
    stream->fetch_size = kFetchFirst;
    return stream;
}

struct Open {
    SPIPlanPtr plan;
    Datum *values;
    const char *nulls;
    const char *name;
    Portal portal;
};

void row_stream_open(RowStream *stream, SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only)
{
    static uint64 cursors_opened = 0;
    char name[64];
    snprintf(name, sizeof name, "<%s %llu>", stream->function, (unsigned long long) ++cursors_opened);
    Open open{plan, values, nulls, name, nullptr};
    auto do_open = [](void *arg) {
        auto *o = static_cast<Open *>(arg);
        o->portal = SPI_cursor_open(o->name, o->plan, o->values, o->nulls, false);
    };
    if (read_only)
        run_read_only(do_open, &open);
    else
        do_open(&open);
    stream->cursor = MemoryContextStrdup(stream->context, open.portal->name);
    stream->portal = open.portal;
    stream->read_only = read_only;
}

void row_stream_keep(RowStream *stream, uint64 count)
{
    MemoryContext previous = MemoryContextSwitchTo(stream->batch);
    if (count > 0) {
        RowRenderer renderer;
        row_renderer_init(&renderer, SPI_tuptable->tupdesc);
        stream->rows = static_cast<Datum *>(palloc(sizeof(Datum) * count));
        for (uint64 i = 0; i < count; i++)
            stream->rows[i] = render_row(&renderer, SPI_tuptable->vals[i]);
    }
    MemoryContextSwitchTo(previous);
    stream->count = count;
    stream->next = 0;
    if (stream->cursor == nullptr)
        stream->exhausted = true; /* kept without a cursor: these are all the rows */
}

void row_stream_watch(RowStream *stream, ExprContext *econtext)
{
    if (stream->cursor == nullptr)
        return;
    RegisterExprContextCallback(econtext, close_stream_callback, PointerGetDatum(stream));
    stream->econtext = econtext;
    stream->registered = true;
}

bool row_stream_next(RowStream *stream, Datum *row)
{
    if (stream->next == stream->count && !stream->exhausted)
        fetch_rows(stream);
    if (stream->next < stream->count) {
        *row = stream->rows[stream->next++];
        return true;
    }
    close_stream(stream);
    if (stream->registered) {
        UnregisterExprContextCallback(stream->econtext, close_stream_callback, PointerGetDatum(stream));
        stream->registered = false;
    }
    if (!stream->finished) {
        stream->finished = true;
        if (builtin_metrics_on()) {
            /* The time spent executing, as if it had started query_ns ago. */
            builtin_time_since(Builtin::DatabaseQueryTime, metrics_clock_ns() - stream->query_ns);
            builtin_count(Builtin::DatabaseQueryCount);
        }
    }
    return false;
}

ReturnSetInfo *value_per_call_info(FunctionCallInfo fcinfo, const char *function)
{
    auto *info = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (info == nullptr || !IsA(info, ReturnSetInfo) || !(info->allowedModes & SFRM_ValuePerCall))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("%s must be called where a set is accepted", function)));
    return info;
}

bool caller_is_holdable()
{
    return ActivePortal != nullptr && (ActivePortal->cursorOptions & CURSOR_OPT_HOLD) != 0;
}

}  // namespace tusk
