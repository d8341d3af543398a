/*
 * batch_insert.cpp: tusk_batch_insert(target, records, batch_size), which
 * inserts a jsonb array of objects into a table (or a view, a foreign
 * table, a partitioned table) and returns the number of rows inserted.
 *
 * How:
 *  - Keys are column names, matched exactly (byte for byte, no case
 *    folding) against the target's live columns in a sorted list; a key
 *    becomes SQL text only as the quote_identifier() of the column it
 *    matched. Unknown keys, system, generated and GENERATED ALWAYS identity
 *    columns are refused with the row's number.
 *  - Values are converted here, in this backend, by the column type's
 *    input function with the column's typmod (tusk::json_to_datum, the
 *    binding code of tusk_cached; a JSON array given to an array column is
 *    first written as an array literal), under an error context naming the
 *    row and column. A few conversions skip the text round trip where the
 *    result is provably the input function's (see kShortcut*). A missing
 *    key takes the column default; a JSON null is NULL.
 *  - Consecutive rows with the same key set form a run (jsonb keeps an
 *    object's keys sorted, so "same as the previous row" is a walk over two
 *    short lists). A run is cut into statements of at most batch_size rows
 *    and at most 65535 parameters:
 *        INSERT INTO schema.table (c1, c2) VALUES ($1, $2), ($3, $4), ...
 *    prepared once per (columns, row count) through SPI with a generic
 *    plan and parameters of the column types, executed with the Datums
 *    converted here. The INSERT runs as the current user in the caller's
 *    transaction, so privileges (column ones too), row-level security,
 *    triggers, rules, constraints and partition routing all apply, and any
 *    error aborts the whole call: all rows or none.
 *  - Converted values live in a memory context reset after each statement.
 *
 * This file shares no memory between processes: all its state belongs to
 * one call (plans are freed by SPI_finish, or with the transaction).
 *
 * Plain C-style code: no C++ object with a destructor lives in any frame
 * below the SQL entry point, so PostgreSQL errors may longjmp through them.
 * Its two PG_TRY blocks catch an error only to shorten the statement text
 * SPI quotes in the error's context (tens of kilobytes for a statement of
 * thousands of parameters), and always re-throw it.
 */
extern "C" {
#include "postgres.h"

#include "access/relation.h"
#include "catalog/heap.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(tusk_batch_insert);
}

#include <cstring>

#include "guard.hpp"
#include "sql_args.hpp"
#include "metrics.hpp"
#include "query_runner.hpp"

namespace tusk {

namespace {

/* Largest batch_size accepted (statements also stop at kMaxParams). */
constexpr int kMaxBatchSize = 1000000;
/* Parameters in one statement at most (the limit of the wire protocol's Bind). */
constexpr int kMaxParams = 65535;
/* Prepared statement shapes kept during one call. */
constexpr int kPlanSlots = 8;
/* Bytes of a key shown in an error message. */
constexpr int kMaxKeyShown = 200;

/* A live (not dropped) column of the target. */
struct Column {
    const char *name;
    int name_len;
    Oid type;
    int32 typmod;
    char generated;      /* attgenerated */
    char identity;       /* attidentity */
    bool input_ready;    /* input has been looked up */
    bool array_input;    /* an array type read by array_in: takes JSON arrays too */
    bool json_elements;  /* ... whose elements are json or jsonb */
    char shortcut;       /* kShortcut*: a conversion equal to the input function's, without text */
    TypeInput input;
};

/*
 * Conversions that give exactly what the input function would give, without
 * the text round trip, for the commonest columns (exact types, no typmod):
 * a JSON boolean into bool, a JSON string into text, a JSON integer (no
 * fraction digits, within 32 bits) into smallint, integer or bigint. Any
 * other value (dates and timestamps included) goes through its text and the
 * input function, which also raises every error.
 */
constexpr char kShortcutNone = 0;
constexpr char kShortcutBool = 1;
constexpr char kShortcutText = 2;
constexpr char kShortcutInt2 = 3;
constexpr char kShortcutInt4 = 4;
constexpr char kShortcutInt8 = 5;

/* A prepared INSERT for one (columns, rows) shape. */
struct Plan {
    SPIPlanPtr plan;
    int ncols;
    int rows;
    int *columns;        /* column indexes, in key order */
    char *query;
    int head_len;        /* length of the query up to the end of the first row */
    uint64 last_used;
};

enum class ContextMode { None, Converting, Executing };

struct BatchInsert {
    /* the target */
    Oid relid;
    char *relname;       /* for messages */
    char *qualified;     /* quoted schema.table, for SQL */
    char relkind;
    Column *columns;
    int ncolumns;
    int *by_name;        /* indexes into columns, sorted as jsonb sorts keys */

    int batch_size;
    MemoryContext call_context;
    MemoryContext batch_context; /* converted values of the pending statement */

    /* the current run: its key set and the columns the keys name */
    bool have_run;
    int run_ncols;
    const char **run_keys; /* point into records */
    int *run_key_lens;
    int *run_columns;
    int run_rows_cap;      /* rows per statement in this run */

    /* one row's pairs as read */
    int scratch_cap;
    const char **row_keys;
    int *row_key_lens;
    int *row_columns;      /* the columns the keys name, when they are a new key set */
    JsonbValue *row_values;

    /* the pending statement */
    int pending;           /* rows converted, not yet inserted */
    int first_row;         /* 1-based position of the first of them */
    int values_cap;
    Datum *values;
    char *nulls;

    Plan plans[kPlanSlots];
    uint64 clock;

    /* error context */
    ContextMode mode;
    int context_row;
    const char *context_column;
    int context_last_row;

    int64 inserted;
};

const char *json_kind(const JsonbValue *v)
{
    switch (v->type) {
        case jbvNull:
            return "null";
        case jbvString:
            return "string";
        case jbvNumeric:
            return "number";
        case jbvBool:
            return "boolean";
        case jbvBinary:
            return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
        default:
            return "value";
    }
}

void batch_error_context(void *arg)
{
    auto *b = static_cast<BatchInsert *>(arg);
    switch (b->mode) {
        case ContextMode::Converting:
            errcontext("row %d, column \"%s\"", b->context_row, b->context_column);
            break;
        case ContextMode::Executing:
            if (b->context_row == b->context_last_row)
                errcontext("row %d", b->context_row);
            else
                errcontext("rows %d to %d", b->context_row, b->context_last_row);
            break;
        case ContextMode::None:
            break;
    }
}

/* A key as shown in a message: clipped to kMaxKeyShown bytes on a character boundary. */
char *shown_key(const char *key, int len)
{
    if (len <= kMaxKeyShown)
        return pnstrdup(key, len);
    int clip = pg_mbcliplen(key, len, kMaxKeyShown);
    return psprintf("%.*s...", clip, key);
}

/* Orders keys as jsonb orders an object's keys: shorter first, then bytewise. */
int compare_keys(const char *a, int alen, const char *b, int blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

int compare_column_indexes(const void *a, const void *b, void *arg)
{
    const Column *columns = static_cast<const Column *>(arg);
    const Column *x = &columns[*static_cast<const int *>(a)];
    const Column *y = &columns[*static_cast<const int *>(b)];
    return compare_keys(x->name, x->name_len, y->name, y->name_len);
}

/* The index of the column named exactly key, or -1. */
int find_column(const BatchInsert *b, const char *key, int len)
{
    int lo = 0, hi = b->ncolumns - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const Column *c = &b->columns[b->by_name[mid]];
        int cmp = compare_keys(key, len, c->name, c->name_len);
        if (cmp == 0)
            return b->by_name[mid];
        if (cmp < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

void check_arguments(FunctionCallInfo fcinfo)
{
    require_arg(fcinfo, 0, "target");
    require_arg(fcinfo, 1, "records");
    require_arg(fcinfo, 2, "batch_size");
    int32 batch_size = PG_GETARG_INT32(2);
    if (batch_size < 1 || batch_size > kMaxBatchSize)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("batch_size must be between 1 and %d, got %d", kMaxBatchSize, batch_size)));
}

void check_records(Jsonb *records)
{
    if (JB_ROOT_IS_ARRAY(records) && !JB_ROOT_IS_SCALAR(records))
        return;
    const char *kind = "object";
    if (JB_ROOT_IS_SCALAR(records))
        kind = json_kind(getIthJsonbValueFromContainer(&records->root, 0));
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("records must be a JSON array of objects"),
                    errdetail("It is a JSON %s.", kind)));
}

/*
 * Checks the target and reads its columns. Takes the RowExclusiveLock an
 * INSERT takes (held to the end of the transaction), after checking that
 * the current user may insert into it at all.
 */
void open_target(BatchInsert *b, Oid relid)
{
    char relkind = get_rel_relkind(relid);
    if (relkind == '\0')
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", relid)));
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
        relkind != RELKIND_VIEW && relkind != RELKIND_FOREIGN_TABLE)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("cannot insert into relation \"%s\"", get_rel_name(relid)),
                        errdetail_relkind_not_supported(relkind)));
    Oid user = GetUserId();
    if (pg_class_aclcheck(relid, user, ACL_INSERT) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(relid, user, ACL_INSERT, ACLMASK_ANY) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(relkind), get_rel_name(relid));

    Relation rel = try_relation_open(relid, RowExclusiveLock);
    if (rel == nullptr)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", relid)));
    b->relid = relid;
    b->relkind = rel->rd_rel->relkind;
    b->relname = pstrdup(RelationGetRelationName(rel));
    b->qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
                                              RelationGetRelationName(rel));
    TupleDesc desc = RelationGetDescr(rel);
    b->columns = static_cast<Column *>(palloc0(sizeof(Column) * Max(desc->natts, 1)));
    b->ncolumns = 0;
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (att->attisdropped)
            continue;
        Column *c = &b->columns[b->ncolumns++];
        c->name = pstrdup(NameStr(att->attname));
        c->name_len = int(strlen(c->name));
        c->type = att->atttypid;
        c->typmod = att->atttypmod;
        c->generated = att->attgenerated;
        c->identity = att->attidentity;
    }
    relation_close(rel, NoLock);

    b->by_name = static_cast<int *>(palloc(sizeof(int) * Max(b->ncolumns, 1)));
    for (int i = 0; i < b->ncolumns; i++)
        b->by_name[i] = i;
    qsort_arg(b->by_name, b->ncolumns, sizeof(int), compare_column_indexes, b->columns);
}

/* Raises the error for a key that names no insertable column of the target. */
void refuse_key(BatchInsert *b, int row, const char *key, int len, int column)
{
    b->mode = ContextMode::None;
    char *shown = shown_key(key, len);
    if (column >= 0) {
        const Column *c = &b->columns[column];
        if (c->generated != '\0')
            ereport(ERROR, (errcode(ERRCODE_GENERATED_ALWAYS),
                            errmsg("row %d: cannot insert a value into generated column \"%s\"", row, c->name),
                            errdetail("Generated columns are computed; leave the key out.")));
        ereport(ERROR, (errcode(ERRCODE_GENERATED_ALWAYS),
                        errmsg("row %d: cannot insert a value into identity column \"%s\"", row, c->name),
                        errdetail("Column \"%s\" is an identity column defined as GENERATED ALWAYS; "
                                  "leave the key out to take the next value.", c->name)));
    }
    if (b->relkind != RELKIND_VIEW && len < NAMEDATALEN) {
        char *name = pnstrdup(key, len);
        if (strlen(name) == size_t(len) && SystemAttributeByName(name) != nullptr)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("row %d: cannot insert into system column \"%s\"", row, name)));
    }
    /* The same name in another case: say that keys are matched exactly. */
    for (int i = 0; i < b->ncolumns; i++) {
        const Column *c = &b->columns[i];
        if (c->name_len == len && pg_strncasecmp(c->name, key, len) == 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("row %d: column \"%s\" of relation \"%s\" does not exist", row, shown,
                                   b->relname),
                            errhint("Keys are matched to column names exactly, including case: "
                                    "the column is named \"%s\".", c->name)));
    }
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("row %d: column \"%s\" of relation \"%s\" does not exist", row, shown,
                           b->relname)));
}

void ensure_capacity(BatchInsert *b, int pairs)
{
    if (pairs <= b->scratch_cap)
        return;
    int cap = Max(pairs, Max(16, b->scratch_cap * 2));
    MemoryContext old = MemoryContextSwitchTo(b->call_context);
    if (b->scratch_cap == 0) {
        b->row_keys = static_cast<const char **>(palloc(sizeof(char *) * cap));
        b->row_key_lens = static_cast<int *>(palloc(sizeof(int) * cap));
        b->row_columns = static_cast<int *>(palloc(sizeof(int) * cap));
        b->row_values = static_cast<JsonbValue *>(palloc(sizeof(JsonbValue) * cap));
    } else {
        b->row_keys = static_cast<const char **>(repalloc(b->row_keys, sizeof(char *) * cap));
        b->row_key_lens = static_cast<int *>(repalloc(b->row_key_lens, sizeof(int) * cap));
        b->row_columns = static_cast<int *>(repalloc(b->row_columns, sizeof(int) * cap));
        b->row_values = static_cast<JsonbValue *>(repalloc(b->row_values, sizeof(JsonbValue) * cap));
    }
    b->scratch_cap = cap;
    MemoryContextSwitchTo(old);
}

/* Maps a row's keys to the columns they name, or raises the first bad key's error. */
void map_keys(BatchInsert *b, int row, int npairs)
{
    for (int i = 0; i < npairs; i++) {
        int column = find_column(b, b->row_keys[i], b->row_key_lens[i]);
        if (column < 0 || b->columns[column].generated != '\0' ||
            b->columns[column].identity == ATTRIBUTE_IDENTITY_ALWAYS)
            refuse_key(b, row, b->row_keys[i], b->row_key_lens[i], column);
        b->row_columns[i] = column;
    }
}

/*
 * Makes the current row's (mapped) keys the run's key set and sizes its
 * statements: batch_size rows, fewer when that would pass kMaxParams.
 * Every key matched a distinct column, so npairs <= ncolumns.
 */
void start_run(BatchInsert *b, int npairs)
{
    MemoryContext old = MemoryContextSwitchTo(b->call_context);
    if (b->run_keys == nullptr) {
        int cap = Max(b->ncolumns, 1);
        b->run_keys = static_cast<const char **>(palloc(sizeof(char *) * cap));
        b->run_key_lens = static_cast<int *>(palloc(sizeof(int) * cap));
        b->run_columns = static_cast<int *>(palloc(sizeof(int) * cap));
    }
    for (int i = 0; i < npairs; i++) {
        b->run_keys[i] = b->row_keys[i];
        b->run_key_lens[i] = b->row_key_lens[i];
        b->run_columns[i] = b->row_columns[i];
    }
    b->run_ncols = npairs;
    b->run_rows_cap = npairs > 0 ? Min(b->batch_size, kMaxParams / npairs) : b->batch_size;
    b->have_run = true;

    int needed = b->run_rows_cap * npairs;
    if (needed > b->values_cap) {
        if (b->values != nullptr) {
            pfree(b->values);
            pfree(b->nulls);
        }
        b->values = static_cast<Datum *>(palloc(sizeof(Datum) * needed));
        b->nulls = static_cast<char *>(palloc(needed));
        b->values_cap = needed;
    }
    MemoryContextSwitchTo(old);
}

void prepare_input(Column *c, MemoryContext context)
{
    type_input_init(&c->input, c->type, c->typmod, context);
    Oid base = getBaseType(c->type);
    Oid element = get_element_type(base);
    if (element != InvalidOid) {
        Oid function, ioparam;
        getTypeInputInfo(base, &function, &ioparam);
        c->array_input = function == F_ARRAY_IN;
        Oid element_base = getBaseType(element);
        c->json_elements = element_base == JSONOID || element_base == JSONBOID;
    }
    switch (c->type) {
        case BOOLOID:
            c->shortcut = kShortcutBool;
            break;
        case TEXTOID:
            c->shortcut = kShortcutText;
            break;
        case INT2OID:
            c->shortcut = kShortcutInt2;
            break;
        case INT4OID:
            c->shortcut = kShortcutInt4;
            break;
        case INT8OID:
            c->shortcut = kShortcutInt8;
            break;
        default:
            c->shortcut = kShortcutNone;
            break;
    }
    c->input_ready = true;
}

/*
 * A JSON number as an integer, when int2in/int4in/int8in of its text would
 * give the same: it prints without a decimal point (display scale 0) and
 * fits in 32 bits (and, for smallint, in 16). False when it does not, and
 * the caller reads the text, so that errors are the input function's.
 */
bool numeric_as_integer(Numeric number, char shortcut, int32 *result)
{
    if (numeric_is_nan(number) || numeric_is_inf(number))
        return false;
    if (DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(number))) != 0)
        return false;
    bool overflow = false;
    int32 value = numeric_int4_opt_error(number, &overflow);
    if (overflow || (shortcut == kShortcutInt2 && (value < PG_INT16_MIN || value > PG_INT16_MAX)))
        return false;
    *result = value;
    return true;
}

void append_quoted(StringInfo buf, const char *s, int len)
{
    appendStringInfoChar(buf, '"');
    for (int i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            appendStringInfoChar(buf, '\\');
        appendStringInfoChar(buf, s[i]);
    }
    appendStringInfoChar(buf, '"');
}

/*
 * A JSON array as an array literal for array_in: nested arrays become
 * dimensions (unless the elements are json), JSON null is NULL, and every
 * other element is quoted: a string's characters, a number's digits,
 * true/false, an object's JSON text (for json elements: each one's JSON text).
 */
void append_array_literal(StringInfo buf, JsonbContainer *array, bool json_elements)
{
    check_stack_depth();
    appendStringInfoChar(buf, '{');
    JsonbIterator *it = JsonbIteratorInit(array);
    JsonbValue v;
    JsonbIteratorToken token;
    bool first = true;
    while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
        if (token != WJB_ELEM)
            continue;
        if (!first)
            appendStringInfoChar(buf, ',');
        first = false;
        if (v.type == jbvNull) {
            appendStringInfoString(buf, "NULL");
        } else if (json_elements) {
            const char *text;
            if (v.type == jbvBinary) {
                text = JsonbToCString(nullptr, v.val.binary.data, v.val.binary.len);
            } else {
                Jsonb *scalar = JsonbValueToJsonb(&v);
                text = JsonbToCString(nullptr, &scalar->root, VARSIZE(scalar));
            }
            append_quoted(buf, text, int(strlen(text)));
        } else if (v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data)) {
            append_array_literal(buf, v.val.binary.data, false);
        } else if (v.type == jbvBinary) {
            const char *text = JsonbToCString(nullptr, v.val.binary.data, v.val.binary.len);
            append_quoted(buf, text, int(strlen(text)));
        } else if (v.type == jbvString) {
            append_quoted(buf, v.val.string.val, v.val.string.len);
        } else if (v.type == jbvNumeric) {
            const char *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
            append_quoted(buf, text, int(strlen(text)));
        } else if (v.type == jbvBool) {
            appendStringInfoString(buf, v.val.boolean ? "true" : "false");
        }
    }
    appendStringInfoChar(buf, '}');
}

/* One JSON value as a Datum of column c, by the column type's input function with its typmod. */
Datum convert_value(BatchInsert *b, Column *c, JsonbValue *v, bool *isnull)
{
    if (!c->input_ready)
        prepare_input(c, b->call_context);
    switch (c->shortcut) {
        case kShortcutBool:
            if (v->type == jbvBool) {
                *isnull = false;
                return BoolGetDatum(v->val.boolean);
            }
            break;
        case kShortcutText:
            if (v->type == jbvString) {
                *isnull = false;
                return PointerGetDatum(cstring_to_text_with_len(v->val.string.val, v->val.string.len));
            }
            break;
        case kShortcutInt2:
        case kShortcutInt4:
        case kShortcutInt8: {
            int32 value;
            if (v->type == jbvNumeric && numeric_as_integer(v->val.numeric, c->shortcut, &value)) {
                *isnull = false;
                if (c->shortcut == kShortcutInt2)
                    return Int16GetDatum(int16(value));
                if (c->shortcut == kShortcutInt4)
                    return Int32GetDatum(value);
                return Int64GetDatum(int64(value));
            }
            break;
        }
        default:
            break;
    }
    if (c->array_input && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data)) {
        StringInfoData literal;
        initStringInfo(&literal);
        append_array_literal(&literal, v->val.binary.data, c->json_elements);
        *isnull = false;
        return InputFunctionCall(&c->input.function, literal.data, c->input.ioparam, c->input.typmod);
    }
    return json_to_datum(v, &c->input, isnull);
}

/*
 * The statement's text in an error: SPI quotes it whole in the error's
 * context (and as the internal query), which for a statement of thousands
 * of parameters is tens of kilobytes. Shortens it to its first row.
 */
void shorten_statement(ErrorData *edata, const Plan *p)
{
    size_t query_len = strlen(p->query);
    StringInfoData brief;
    initStringInfo(&brief);
    appendBinaryStringInfo(&brief, p->query, p->head_len);
    if (p->rows > 1)
        appendStringInfo(&brief, ", ... (%d rows)", p->rows);
    if (edata->context != nullptr) {
        char *at = strstr(edata->context, p->query);
        if (at != nullptr) {
            StringInfoData context;
            initStringInfo(&context);
            appendBinaryStringInfo(&context, edata->context, int(at - edata->context));
            appendStringInfoString(&context, brief.data);
            appendStringInfoString(&context, at + query_len);
            edata->context = context.data;
        }
    }
    if (edata->internalquery != nullptr && strcmp(edata->internalquery, p->query) == 0) {
        edata->internalquery = brief.data;
        if (edata->internalpos > p->head_len)
            edata->internalpos = 0;
    }
}

/* Re-throws the error being handled with the statement's text shortened. */
void rethrow_shortened(MemoryContext context, const Plan *p)
{
    MemoryContextSwitchTo(context);
    ErrorData *edata = CopyErrorData();
    FlushErrorState();
    shorten_statement(edata, p);
    ReThrowError(edata);
}

/* The INSERT for ncols columns (in key order) and rows rows, prepared or taken from the slots. */
Plan *plan_for(BatchInsert *b, int ncols, const int *columns, int rows)
{
    Plan *victim = &b->plans[0];
    for (int i = 0; i < kPlanSlots; i++) {
        Plan *p = &b->plans[i];
        if (p->plan != nullptr && p->ncols == ncols && p->rows == rows &&
            memcmp(p->columns, columns, sizeof(int) * ncols) == 0) {
            p->last_used = ++b->clock;
            return p;
        }
        if (p->plan == nullptr || (victim->plan != nullptr && p->last_used < victim->last_used))
            victim = p;
    }
    if (victim->plan != nullptr) {
        SPI_freeplan(victim->plan);
        pfree(victim->columns);
        pfree(victim->query);
        victim->plan = nullptr;
    }

    MemoryContext old = MemoryContextSwitchTo(b->call_context);
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfo(&sql, "INSERT INTO %s", b->qualified);
    int nparams = ncols * rows;
    Oid *types = nullptr;
    if (ncols == 0) {
        /* Rows of defaults only. */
        appendStringInfo(&sql, " SELECT FROM pg_catalog.generate_series(1, %d)", rows);
        victim->head_len = sql.len;
    } else {
        appendStringInfoString(&sql, " (");
        for (int i = 0; i < ncols; i++)
            appendStringInfo(&sql, "%s%s", i ? ", " : "", quote_identifier(b->columns[columns[i]].name));
        appendStringInfoString(&sql, ") VALUES ");
        types = static_cast<Oid *>(palloc(sizeof(Oid) * nparams));
        int n = 0;
        for (int r = 0; r < rows; r++) {
            appendStringInfoString(&sql, r ? ", (" : "(");
            for (int i = 0; i < ncols; i++) {
                types[n] = b->columns[columns[i]].type;
                appendStringInfo(&sql, "%s$%d", i ? ", " : "", ++n);
            }
            appendStringInfoChar(&sql, ')');
            if (r == 0)
                victim->head_len = sql.len;
        }
    }
    victim->query = sql.data;
    victim->ncols = ncols;
    victim->rows = rows;
    victim->columns = static_cast<int *>(palloc(sizeof(int) * Max(ncols, 1)));
    memcpy(victim->columns, columns, sizeof(int) * ncols);
    MemoryContextSwitchTo(old);

    SPIPlanPtr plan = nullptr;
    MemoryContext context = CurrentMemoryContext;
    Plan *volatile p = victim;
    PG_TRY();
    {
        plan = SPI_prepare_cursor(p->query, nparams, types, CURSOR_OPT_GENERIC_PLAN);
    }
    PG_CATCH();
    {
        rethrow_shortened(context, p);
    }
    PG_END_TRY();
    if (plan == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare the INSERT: %s", SPI_result_code_string(SPI_result))));
    /*
     * The statement names the target; the name must still lead to the
     * relation whose columns were read (a schema renamed meanwhile, by
     * another session or by a trigger of this INSERT, could move it).
     */
    auto *source = static_cast<CachedPlanSource *>(linitial(SPI_plan_get_plan_sources(plan)));
    if (!list_member_oid(source->relationOids, b->relid))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("relation \"%s\" was renamed or moved while rows were inserted", b->relname),
                        errdetail("%s no longer names it.", b->qualified)));
    if (types != nullptr)
        pfree(types);
    victim->plan = plan;
    victim->last_used = ++b->clock;
    return victim;
}

/* Inserts the pending rows with one statement. */
void flush(BatchInsert *b)
{
    if (b->pending == 0)
        return;
    b->mode = ContextMode::Executing;
    b->context_row = b->first_row;
    b->context_last_row = b->first_row + b->pending - 1;
    Plan *p = plan_for(b, b->run_ncols, b->run_columns, b->pending);

    int rc = 0;
    MemoryContext context = CurrentMemoryContext;
    Plan *volatile vp = p;
    PG_TRY();
    {
        rc = SPI_execute_plan(vp->plan, b->values, b->nulls, false, 0);
    }
    PG_CATCH();
    {
        rethrow_shortened(context, vp);
    }
    PG_END_TRY();
    if (rc < 0)
        ereport(ERROR, (errmsg("tusk: the INSERT failed: %s", SPI_result_code_string(rc))));
    b->inserted += int64(SPI_processed);
    SPI_freetuptable(SPI_tuptable);

    b->pending = 0;
    b->mode = ContextMode::None;
    MemoryContextReset(b->batch_context);
}

/*
 * One child of a jsonb container as a JsonbValue, as jsonb's own iterator
 * reads it: entry is its JEntry, its data lies at base + [offset, end)
 * (numbers and nested containers after padding to a 4-byte boundary).
 * Scalars and nested containers point into the container; nothing is copied.
 */
void read_child(JEntry entry, char *base, uint32 offset, uint32 end, JsonbValue *v)
{
    switch (entry & JENTRY_TYPEMASK) {
        case JENTRY_ISSTRING:
            v->type = jbvString;
            v->val.string.val = base + offset;
            v->val.string.len = int(end - offset);
            break;
        case JENTRY_ISNUMERIC:
            v->type = jbvNumeric;
            v->val.numeric = reinterpret_cast<Numeric>(base + INTALIGN(offset));
            break;
        case JENTRY_ISBOOL_TRUE:
            v->type = jbvBool;
            v->val.boolean = true;
            break;
        case JENTRY_ISBOOL_FALSE:
            v->type = jbvBool;
            v->val.boolean = false;
            break;
        case JENTRY_ISNULL:
            v->type = jbvNull;
            break;
        default:
            v->type = jbvBinary;
            v->val.binary.data = reinterpret_cast<JsonbContainer *>(base + INTALIGN(offset));
            v->val.binary.len = int(end - INTALIGN(offset));
            break;
    }
}

/* Reads one object, starts a new run when its keys differ from the run's, converts its values. */
void add_row(BatchInsert *b, JsonbContainer *object, int row)
{
    int npairs = int(JsonContainerSize(object));
    if (npairs > b->ncolumns) {
        /* More keys than columns: one names none. Refuse it before sizing buffers for them all. */
        char *keys = reinterpret_cast<char *>(&object->children[2 * npairs]);
        uint32 offset = 0;
        for (int i = 0; i < npairs; i++) {
            uint32 end = offset;
            JBE_ADVANCE_OFFSET(end, object->children[i]);
            int column = find_column(b, keys + offset, int(end - offset));
            if (column < 0 || b->columns[column].generated != '\0' ||
                b->columns[column].identity == ATTRIBUTE_IDENTITY_ALWAYS)
                refuse_key(b, row, keys + offset, int(end - offset), column);
            offset = end;
        }
    }
    ensure_capacity(b, npairs);

    /* An object's children: its keys (sorted), then their values in the same order. */
    int n = npairs;
    char *base = reinterpret_cast<char *>(&object->children[2 * n]);
    uint32 offset = 0;
    for (int i = 0; i < n; i++) {
        uint32 end = offset;
        JBE_ADVANCE_OFFSET(end, object->children[i]);
        b->row_keys[i] = base + offset;
        b->row_key_lens[i] = int(end - offset);
        offset = end;
    }
    for (int i = 0; i < n; i++) {
        uint32 end = offset;
        JEntry entry = object->children[n + i];
        JBE_ADVANCE_OFFSET(end, entry);
        read_child(entry, base, offset, end, &b->row_values[i]);
        offset = end;
    }

    bool same = b->have_run && n == b->run_ncols;
    for (int i = 0; same && i < n; i++)
        same = b->row_key_lens[i] == b->run_key_lens[i] &&
               memcmp(b->row_keys[i], b->run_keys[i], b->row_key_lens[i]) == 0;
    if (!same) {
        /* A new key set: check it before the previous run's rows are inserted. */
        map_keys(b, row, n);
        flush(b);
        start_run(b, n);
    }

    if (b->pending == 0)
        b->first_row = row;
    MemoryContext old = MemoryContextSwitchTo(b->batch_context);
    int first = b->pending * n;
    b->mode = ContextMode::Converting;
    b->context_row = row;
    for (int i = 0; i < n; i++) {
        Column *c = &b->columns[b->run_columns[i]];
        b->context_column = c->name;
        bool isnull;
        b->values[first + i] = convert_value(b, c, &b->row_values[i], &isnull);
        b->nulls[first + i] = isnull ? 'n' : ' ';
    }
    b->mode = ContextMode::None;
    b->pending++;
    MemoryContextSwitchTo(old);

    if (b->pending == b->run_rows_cap)
        flush(b);
}

Datum batch_insert(FunctionCallInfo fcinfo)
{
    check_arguments(fcinfo);
    Oid relid = PG_GETARG_OID(0);
    Jsonb *records = PG_GETARG_JSONB_P(1);
    check_records(records);

    BatchInsert *b = static_cast<BatchInsert *>(palloc0(sizeof(BatchInsert)));
    b->batch_size = PG_GETARG_INT32(2);
    b->call_context = CurrentMemoryContext;
    open_target(b, relid);

    int count = int(JB_ROOT_COUNT(records));
    if (count == 0)
        PG_RETURN_INT64(0);

    b->batch_context = AllocSetContextCreate(b->call_context, "tusk_batch_insert batch",
                                             ALLOCSET_DEFAULT_SIZES);
    ErrorContextCallback callback;
    callback.callback = batch_error_context;
    callback.arg = b;
    callback.previous = error_context_stack;
    error_context_stack = &callback;

    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    MemoryContextSwitchTo(b->call_context);

    JsonbContainer *array = &records->root;
    char *base = reinterpret_cast<char *>(&array->children[count]);
    uint32 offset = 0;
    for (int row = 1; row <= count; row++) {
        JsonbValue v;
        uint32 end = offset;
        JEntry entry = array->children[row - 1];
        JBE_ADVANCE_OFFSET(end, entry);
        read_child(entry, base, offset, end, &v);
        offset = end;
        if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("row %d of records is a JSON %s, not an object", row, json_kind(&v))));
        add_row(b, v.val.binary.data, row);
        CHECK_FOR_INTERRUPTS();
    }
    flush(b);

    error_context_stack = callback.previous;
    SPI_finish();
    MemoryContextDelete(b->batch_context);
    builtin_add(Builtin::BatchInsertRecords, double(b->inserted));
    PG_RETURN_INT64(b->inserted);
}

}  // namespace

}  // namespace tusk

extern "C" {

Datum tusk_batch_insert(PG_FUNCTION_ARGS)
{
    return tusk::timed_sql_entry(tusk::Builtin::BatchInsertTime,
                                 [fcinfo] { return tusk::batch_insert(fcinfo); });
}

}
