/*
 * row_stream.hpp: a statement's rows as jsonb objects (to_jsonb of each
 * row, as tusk_cached renders them), all at once or a batch at a time
 * through an SPI cursor that lives across the calls of a set-returning
 * function (tusk_query_rows, tusk_cached_rows). Backend-local; nothing is
 * shared between processes.
 *
 * Plain C-style code that raises PostgreSQL errors directly: call it from
 * frames that hold no C++ object with a destructor.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "utils/jsonb.h"
#include "utils/portal.h"
}

namespace tusk {

/* The rows of tuptable as one jsonb array (`[]` for none), in the current memory context. */
Jsonb *rows_as_array(SPITupleTable *tuptable, uint64 count);

/* A statement's rows, handed out one at a time. Lives in the memory context it was created in. */
struct RowStream {
    MemoryContext context; /* where it lives */
    const char *function;  /* the SQL function reading it, for names and messages */
    char *cursor;          /* the portal's name; nullptr once closed or when there is none */
    Portal portal;         /* the portal it named when opened */
    bool read_only;        /* fetch under tusk_cached's read-only rules */
    MemoryContext batch;   /* the rendered rows of the last fetch */
    Datum *rows;
    uint64 count;
    uint64 next;
    long fetch_size;       /* grows from a few rows to a thousand */
    bool exhausted;
    int64 query_ns;        /* time spent executing, for database_query_time */
    ExprContext *econtext; /* where the closing callback is registered, if it is */
    bool registered;
    bool finished;         /* the last row was read (and the statement recorded in the metrics) */
};

/* A stream, in context, for the SQL function `function` (a string that outlives it). */
RowStream *row_stream_create(MemoryContext context, const char *function);

/*
 * Inside SPI: opens a cursor on plan with values/nulls (read_only: opened
 * and fetched under tusk_cached's read-only rules). An unsaved plan is
 * copied into the cursor.
 */
void row_stream_open(RowStream *stream, SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only);

/* Inside SPI: keeps SPI_tuptable's first `count` rows: the next batch, or without a cursor all of them. */
void row_stream_keep(RowStream *stream, uint64 count);

/* Closes the cursor when the set-returning function's caller stops before the last row. */
void row_stream_watch(RowStream *stream, ExprContext *econtext);

/*
 * The next row (a jsonb Datum, valid until the next call), or false at the
 * end: the cursor is closed and the statement recorded in
 * database_query_time (query_ns) and database_query_count.
 */
bool row_stream_next(RowStream *stream, Datum *row);

/* The set-returning call's ReturnSetInfo; an ERROR unless it takes rows one per call. */
ReturnSetInfo *value_per_call_info(FunctionCallInfo fcinfo, const char *function);

/* Whether the query calling us is read through a WITH HOLD cursor (it outlives the transaction). */
bool caller_is_holdable();

}  // namespace tusk
