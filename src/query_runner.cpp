/*
 * query_runner.cpp: read-only execution of a cached query through SPI.
 *
 * Two passes, both only on a cache miss:
 *  1. The user's text is analysed alone (SPI_prepare_params with variable
 *     parameters, as PREPARE without types does). This checks that it is one
 *     statement, that it only reads, and infers the type of every $n.
 *  2. That one statement is wrapped as
 *       SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(tusk_row.*)), '[]')
 *       FROM (<statement>) AS tusk_row
 *     (tusk_row.* is a whole-row reference even when a column is named
 *     tusk_row) prepared with the inferred types and run with
 *     transaction_read_only set; an ExecutorStart hook refuses every
 *     statement that is not a plain SELECT while it runs, so functions it
 *     calls cannot write either, not even to temporary tables.
 * Plain C-style code: no C++ object with a destructor lives in these frames.
 */
#include "query_runner.hpp"

#include "guard.hpp"
#include "invalidation.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "tcop/utility.h"
#include "parser/parse_param.h"
#include "tcop/cmdtag.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
}

namespace tusk {

namespace {

/* > 0 while a cached query runs in this backend (they may nest). Backend-local. */
int cached_query_depth = 0;
ExecutorStart_hook_type previous_executor_start = nullptr;

/* Refuses any statement that writes or locks rows while a cached query runs. */
void refuse_writes_executor_start(QueryDesc *query, int eflags)
{
    if (cached_query_depth > 0 && !(eflags & EXEC_FLAG_EXPLAIN_ONLY)) {
        PlannedStmt *stmt = query->plannedstmt;
        if (query->operation != CMD_SELECT || stmt->hasModifyingCTE || stmt->rowMarks != NIL)
            ereport(ERROR,
                    (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                     errmsg("tusk_cached runs read-only queries only"),
                     errdetail("A function called by the query tried to run %s.",
                               GetCommandTagName(CreateCommandTag(reinterpret_cast<Node *>(stmt))))));
    }
    /* What a fill in progress reads, wherever it runs (also inside the functions it calls). */
    fill_note_plan(query->plannedstmt);
    if (previous_executor_start)
        previous_executor_start(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
}

struct InferredParams {
    Oid *types;
    int count;
};

void setup_variable_params(ParseState *pstate, void *arg)
{
    auto *params = static_cast<InferredParams *>(arg);
    setup_parse_variable_parameters(pstate, &params->types, &params->count);
}

/* Refuses anything but a plain reading query. */
void check_read_only(CachedPlanSource *source)
{
    const char *tag = GetCommandTagName(source->commandTag);
    ListCell *lc;
    foreach (lc, source->query_list) {
        Query *q = lfirst_node(Query, lc);
        if (q->commandType == CMD_UTILITY)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("tusk_cached caches only SELECT, VALUES and TABLE queries"),
                     errdetail("The query is a %s statement.", tag)));
        if (q->commandType != CMD_SELECT || q->hasModifyingCTE)
            ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                            errmsg("tusk_cached runs read-only queries only"),
                            errdetail(q->hasModifyingCTE
                                          ? "The query contains a data-modifying WITH clause."
                                          : "The statement is %s, which writes data.",
                                      tag)));
        if (q->rowMarks != NIL)
            ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                            errmsg("tusk_cached runs read-only queries only"),
                            errdetail("SELECT FOR UPDATE/SHARE locks rows.")));
    }
}

struct BindContext {
    int position;
};

void bind_error_context(void *arg)
{
    errcontext("binding $%d from params", static_cast<BindContext *>(arg)->position);
}

}  // namespace

void type_input_init(TypeInput *input, Oid type, int32 typmod, MemoryContext context)
{
    input->type = type;
    input->base_type = getBaseType(type);
    input->typmod = typmod;
    Oid function;
    getTypeInputInfo(type, &function, &input->ioparam);
    fmgr_info_cxt(function, &input->function, context);
}

Datum json_to_datum(JsonbValue *value, TypeInput *input, bool *isnull)
{
    Oid type = input->type;
    int32 typmod = input->typmod;
    if (value->type == jbvNull) {
        /* NULL goes to the input function too: a domain's NOT NULL and CHECK see it. */
        *isnull = true;
        return InputFunctionCall(&input->function, nullptr, input->ioparam, input->typmod);
    }
    *isnull = false;

    char *text;
    if (type == JSONBOID)
        return JsonbPGetDatum(JsonbValueToJsonb(value));
    if (input->base_type == JSONOID || input->base_type == JSONBOID) { /* json, or a domain over either */
        Jsonb *doc = JsonbValueToJsonb(value);
        text = JsonbToCString(nullptr, &doc->root, VARSIZE(doc));
    } else {
        switch (value->type) {
            case jbvString:
                text = pnstrdup(value->val.string.val, value->val.string.len);
                break;
            case jbvNumeric:
                /* numeric_in of numeric_out is the identity: skip the round trip. */
                if (type == NUMERICOID && typmod < 0)
                    return NumericGetDatum(value->val.numeric);
                text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value->val.numeric)));
                break;
            case jbvBool:
                text = pstrdup(value->val.boolean ? "true" : "false");
                break;
            case jbvBinary:
                text = JsonbToCString(nullptr, value->val.binary.data, value->val.binary.len);
                break;
            default:
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("unsupported JSON value")));
        }
    }
    return InputFunctionCall(&input->function, text, input->ioparam, typmod);
}

void query_runner_install_hooks()
{
    previous_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = refuse_writes_executor_start;
}

namespace {

/* The number of elements of params (NULL: 0); raises unless it is NULL or a JSON array. */
int params_count(Jsonb *params)
{
    if (params == nullptr)
        return 0;
    if (!JB_ROOT_IS_ARRAY(params) || JB_ROOT_IS_SCALAR(params))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("params must be a JSON array"),
                        errhint("Pass the values for $1, $2, ... as '[value1, value2]'.")));
    return int(JB_ROOT_COUNT(params));
}

/* Raises unless a statement that uses `used` parameters got `given`. */
void check_param_count(int used, int given)
{
    if (used != given)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("the query uses %d parameter%s but params has %d element%s", used,
                        used == 1 ? "" : "s", given, given == 1 ? "" : "s"),
                 errhint("params is a JSON array whose element n is bound to $n.")));
}

}  // namespace

AnalysedStatement analyse_statement(const char *query, const char *function)
{
    /*
     * The parser grows this array with repalloc, which keeps it in the
     * context it was first allocated in: allocate it here, in the caller's
     * (SPI procedure) context, or it would be made in SPI's executor
     * context, which SPI_prepare_params resets before returning.
     */
    InferredParams inferred{static_cast<Oid *>(palloc0(sizeof(Oid))), 0};
    SPIPlanPtr analysed = SPI_prepare_params(query, setup_variable_params, &inferred, 0);
    if (analysed == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare query: %s",
                               SPI_result_code_string(SPI_result))));
    List *sources = SPI_plan_get_plan_sources(analysed);
    if (list_length(sources) != 1)
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                        errmsg("%s takes exactly one SQL statement, got %d", function,
                               list_length(sources))));
    AnalysedStatement out;
    /* Not a Node: no castNode here. */
    out.source = static_cast<CachedPlanSource *>(linitial(sources));
    out.count = inferred.count;
    out.types = out.count > 0 ? static_cast<Oid *>(palloc(sizeof(Oid) * out.count)) : nullptr;
    for (int i = 0; i < out.count; i++) {
        Oid t = inferred.types[i];
        out.types[i] = (t == InvalidOid || t == UNKNOWNOID) ? TEXTOID : t;
    }
    /* The statement's own text, without a trailing semicolon. */
    RawStmt *raw = out.source->raw_parse_tree;
    out.text = query + raw->stmt_location;
    out.length = raw->stmt_len > 0 ? raw->stmt_len : int(strlen(out.text));
    return out;
}

void bind_params(Jsonb *params, TypeInput *inputs, int used, Datum **values_out, char **nulls_out)
{
    int count = params_count(params);
    check_param_count(used, count);
    Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * (count + 1)));
    char *nulls = static_cast<char *>(palloc(count + 1));
    for (int i = 0; i < count; i++) {
        BindContext bind{i + 1};
        ErrorContextCallback callback{error_context_stack, bind_error_context, &bind};
        error_context_stack = &callback;
        bool isnull;
        values[i] = json_to_datum(getIthJsonbValueFromContainer(&params->root, i), &inputs[i], &isnull);
        nulls[i] = isnull ? 'n' : ' ';
        error_context_stack = callback.previous;
    }
    *values_out = values;
    *nulls_out = nulls;
}

namespace {

/*
 * Pass 1 of a reading query (tusk_cached's rules): analysed, checked, its
 * params bound to the types its $n need. params' shape is checked before
 * the query is parsed.
 */
AnalysedStatement analyse_reading_query(const char *query, Jsonb *params, const char *function, Datum **values,
                                        char **nulls)
{
    params_count(params); /* its shape is reported before the query's errors */
    AnalysedStatement statement = analyse_statement(query, function);
    check_read_only(statement.source);
    TypeInput *inputs = static_cast<TypeInput *>(palloc(sizeof(TypeInput) * (statement.count + 1)));
    for (int i = 0; i < statement.count; i++)
        type_input_init(&inputs[i], statement.types[i], -1, CurrentMemoryContext);
    bind_params(params, inputs, statement.count, values, nulls);
    return statement;
}

}  // namespace

void run_read_only(void (*fn)(void *), void *arg)
{
    int nest_level = NewGUCNestLevel();
    (void) set_config_option("transaction_read_only", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
    int saved_depth = cached_query_depth;
    cached_query_depth++;
    PG_TRY();
    {
        fn(arg);
    }
    PG_FINALLY();
    {
        cached_query_depth = saved_depth;
    }
    PG_END_TRY();
    AtEOXact_GUC(true, nest_level);
}

SPIPlanPtr prepare_read_only(const char *query, Jsonb *params, const char *function, Datum **values, char **nulls)
{
    AnalysedStatement statement = analyse_reading_query(query, params, function, values, nulls);
    SPIPlanPtr plan = SPI_prepare_cursor(query, statement.count, statement.types, CURSOR_OPT_FAST_PLAN);
    if (plan == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare query: %s", SPI_result_code_string(SPI_result))));
    return plan;
}

Jsonb *run_query_as_jsonb(const char *query, Jsonb *params)
{
    MemoryContext caller = CurrentMemoryContext;

    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));

    /* Pass 1: analyse the user's text alone, bind params to the types it needs. */
    Datum *values;
    char *nulls;
    AnalysedStatement statement = analyse_reading_query(query, params, "tusk_cached", &values, &nulls);
    char *wrapped = psprintf(
        "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(tusk_row.*)), "
        "'[]'::pg_catalog.jsonb) FROM (\n%.*s\n) AS tusk_row",
        statement.length, statement.text);

    /* Pass 2: prepare the wrapped query with the inferred types, run it. */
    /* Parallel plans are allowed, as PL/pgSQL allows them: a miss costs what the query costs. */
    SPIPlanPtr plan = SPI_prepare_cursor(wrapped, statement.count, statement.types, CURSOR_OPT_PARALLEL_OK);
    if (plan == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare query: %s",
                               SPI_result_code_string(SPI_result))));

    struct Execution {
        SPIPlanPtr plan;
        Datum *values;
        char *nulls;
        int rc;
    } execution{plan, values, nulls, 0};
    run_read_only(
        [](void *arg) {
            auto *e = static_cast<Execution *>(arg);
            e->rc = SPI_execute_plan(e->plan, e->values, e->nulls, false, 0);
        },
        &execution);
    int rc = execution.rc;

    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        ereport(ERROR, (errmsg("tusk: unexpected result from query: %s",
                               SPI_result_code_string(rc))));
    bool isnull;
    Datum rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    MemoryContext spi = MemoryContextSwitchTo(caller);
    Jsonb *result = DatumGetJsonbPCopy(rows);
    MemoryContextSwitchTo(spi);
    SPI_finish();
    return result;
}

}  // namespace tusk
