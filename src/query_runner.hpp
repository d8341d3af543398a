/*
 * query_runner.hpp: runs a user's query read-only and returns its rows as
 * a jsonb array of objects.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"
#include "executor/spi.h"
#include "utils/plancache.h"
}

namespace tusk {

/* Longest cache key accepted, in bytes. */
constexpr size_t kMaxKeyBytes = 2048; /* fits a btree entry of the L3 table */

/*
 * Runs query (exactly one SELECT, VALUES or TABLE statement) with params
 * (a jsonb array bound to $1..$n, or nullptr) in a read-only context and
 * returns the rows as a jsonb array of objects, in the query's order,
 * allocated in the caller's memory context. Raises PostgreSQL errors
 * directly: call it from a frame that holds no C++ destructors, or
 * through pg_call().
 */
Jsonb *run_query_as_jsonb(const char *query, Jsonb *params);

/* How to read a value of one SQL type (with a typmod, -1 for none) from text. */
struct TypeInput {
    Oid type;
    Oid base_type; /* type, or the type under a domain */
    int32 typmod;
    Oid ioparam;
    FmgrInfo function; /* the type's input function, looked up in `context` */
};

void type_input_init(TypeInput *input, Oid type, int32 typmod, MemoryContext context);

/*
 * One JSON value as a Datum of input->type (with its typmod), read by
 * the type's own input function from the value's text: a string's
 * characters, a number's digits, true/false, or an array's or object's
 * JSON text. JSON null is SQL NULL (checked by a domain's input function).
 * json and jsonb (and domains over them) take any JSON value as it is.
 * Raises the input function's error (invalid_text_representation
 * and friends); callers add the context (which $n, which row and column).
 */
Datum json_to_datum(JsonbValue *value, TypeInput *input, bool *isnull);

/* One statement, analysed as PREPARE without parameter types does. */
struct AnalysedStatement {
    CachedPlanSource *source; /* in the current SPI connection */
    Oid *types;                      /* the type of each $n (text where nothing decides it) */
    int count;                       /* how many $n */
    const char *text;                /* the statement's own text within the query... */
    int length;                      /* ...and its length, without a trailing semicolon */
};

/*
 * Parses and analyses query, which must be exactly one statement (an ERROR
 * naming `function` otherwise), inferring the type of every $n. Runs inside
 * an SPI connection; raises PostgreSQL errors directly.
 */
AnalysedStatement analyse_statement(const char *query, const char *function);

/*
 * Binds params (NULL or a JSON array of exactly `used` elements, else an
 * ERROR) to *values / *nulls (palloc'd), element i through inputs[i];
 * errors name the $n.
 */
void bind_params(Jsonb *params, TypeInput *inputs, int used, Datum **values, char **nulls);

/*
 * Runs fn(arg) under tusk_cached's read-only rules: transaction_read_only
 * on, and the ExecutorStart hook refusing every statement that is not a
 * plain SELECT (so functions the query calls cannot write either).
 */
void run_read_only(void (*fn)(void *), void *arg);

/*
 * Inside SPI: query (one reading statement, checked as run_query_as_jsonb
 * checks it) prepared for a cursor with the types its $n need, and params
 * bound to *values / *nulls. `function` names the caller in errors.
 */
SPIPlanPtr prepare_read_only(const char *query, Jsonb *params, const char *function, Datum **values, char **nulls);

/* Installs the ExecutorStart hook that keeps cached queries read-only (from _PG_init). */
void query_runner_install_hooks();

}  // namespace tusk
