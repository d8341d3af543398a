/*
 * l3_cache.cpp: the L3 tier, the table tusk_cache_l3 (see sql/tusk--*.sql).
 *
 * Access: PUBLIC has no privileges on the table. tusk reads and writes it as
 * the table's owner (SetUserIdAndSecContext, as a security-restricted
 * operation) through SPI plans prepared once per backend. Every name in
 * those statements is schema-qualified, operators included, so the
 * caller's search_path cannot send them to objects of the caller's making.
 * The table is found through the extension's schema; a relcache callback
 * makes the next call look again when the table is dropped or altered.
 *
 * Transactions: fills are written in the caller's transaction, at its end:
 * pending.cpp queues them and calls l3_put_batch() at PRE_COMMIT, which
 * writes them in one subtransaction, a statement per chunk of up to
 * kBatchRows rows or kBatchBytes of values. So row locks of
 * fills are held only while a transaction commits, a transaction that
 * filled thousands of keys uses one subtransaction, and the rows appear
 * when it commits or vanish if it rolls back. Fills are skipped in
 * read-only transactions, on hot standbys and under REPEATABLE READ and
 * SERIALIZABLE (where a row another session refreshed since the snapshot
 * is a serialization failure).
 *
 * Waiting: a fill never waits for long. Its batch runs with a short
 * lock_timeout (kFillLockTimeout), which only matters when an open
 * transaction of tusk_cache_delete/invalidate/flush holds the rows: then
 * the batch is skipped (the rows are being removed anyway). Expired rows
 * are swept with SKIP LOCKED. A lookup does not wait for a lock on the
 * table (VACUUM FULL, TRUNCATE): it skips L3. Any other error of a fill
 * skips L3 (counted in errors, a WARNING at most once a minute per
 * backend) instead of failing the commit, except a cancel, which is
 * raised again. Deletes are the user's writes: they wait as DELETE does.
 *
 * Snapshots: lookups read the latest committed rows (plus this
 * transaction's own deletions), not the transaction's snapshot: under
 * REPEATABLE READ an old snapshot would bring back rows that were
 * invalidated since, and copy them up into L1 and L2.
 *
 * Expired rows are never served. Each batch also removes up to
 * kSweepPerFill expired rows per row it writes (oldest first), so the table
 * cannot grow past its live rows by more than what expires between fills.
 *
 * Shared state: the l3 counters, atomics (pg_atomic_uint64), no lock; the
 * removal epochs are invalidation.cpp's (explicit_epoch()).
 * Plain C-style code: no C++ object with a destructor lives in these frames.
 */
#include "l3_cache.hpp"

#include <algorithm>

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/array.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "core/cache_key.hpp"
#include "invalidation.hpp"
#include "subtransaction.hpp"
#include "pending.hpp"

namespace tusk {

namespace {

constexpr const char *kTableName = "tusk_cache_l3";
constexpr int kSweepPerFill = 8;
/* The longest a commit's fills wait for a row lock (held by an open delete). */
constexpr const char *kFillLockTimeout = "50ms";

bool l3_enabled_setting = true;

struct L3Shared {
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 sets;
    pg_atomic_uint64 expirations;
    pg_atomic_uint64 errors;
};
L3Shared *shared = nullptr;

void count_rows(pg_atomic_uint64 L3Shared::*counter, uint64 n)
{
    if (shared != nullptr && n > 0)
        pg_atomic_fetch_add_u64(&(shared->*counter), n);
}

void count(pg_atomic_uint64 L3Shared::*counter) { count_rows(counter, 1); }

enum Statement { Get, PutBatch, DeleteBatch, Delete, DeletePrefix, DeleteAll, Sweep, Count, kStatements };

struct StatementText {
    const char *sql;
    int nargs;
    Oid types[7];
};

/* %s is the table's qualified name. */
const StatementText statement_texts[kStatements] = {
    {"SELECT fingerprint, value, expires_at, xmax, validity FROM %s"
     " WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
     2, {OIDOID, TEXTOID}},
    {"INSERT INTO %s AS l3 (role_id, key, fingerprint, value, expires_at, stored_at, validity)"
     " SELECT b.role_id, b.key, b.fingerprint, b.value, b.expires_at, $6, b.validity"
     " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
     " pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($7))"
     " AS b(role_id, key, fingerprint, value, expires_at, validity)"
     " ON CONFLICT ON CONSTRAINT tusk_cache_l3_pkey DO UPDATE"
     " SET fingerprint = excluded.fingerprint, value = excluded.value,"
     " expires_at = excluded.expires_at, stored_at = excluded.stored_at, validity = excluded.validity",
     7, {OIDARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, JSONBARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID,
         BYTEAARRAYOID}},
    {"DELETE FROM %s AS l3 USING ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(role_id, key)"
     " WHERE l3.role_id OPERATOR(pg_catalog.=) d.role_id AND l3.key OPERATOR(pg_catalog.=) d.key",
     2, {OIDARRAYOID, TEXTARRAYOID}},
    {"DELETE FROM %s WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
     2, {OIDOID, TEXTOID}},
    {"DELETE FROM %s WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.^@) $2",
     2, {OIDOID, TEXTOID}},
    {"DELETE FROM %s", 0, {}},
    {"DELETE FROM %1$s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
     "SELECT ctid FROM %1$s WHERE expires_at OPERATOR(pg_catalog.<=) $1"
     " ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
     2, {TIMESTAMPTZOID, INT8OID}},
    {"SELECT pg_catalog.count(*), pg_catalog.pg_total_relation_size($2) FROM %s"
     " WHERE expires_at OPERATOR(pg_catalog.>) $1",
     2, {TIMESTAMPTZOID, REGCLASSOID}},
};

/* Backend-local: where the table is, and the plans prepared for it (in CacheMemoryContext). */
struct Table {
    Oid relid = InvalidOid;
    Oid owner = InvalidOid;
    Oid schema = InvalidOid;
    char *qualified_name = nullptr; /* in TopMemoryContext */
    SPIPlanPtr plans[kStatements] = {};
};
Table table;
bool table_recheck = false;
bool callback_registered = false;

void on_relcache_invalidation(Datum, Oid relid)
{
    if (relid == InvalidOid || relid == table.relid)
        table_recheck = true;
}

void forget_table()
{
    for (SPIPlanPtr &plan : table.plans) {
        if (plan != nullptr)
            SPI_freeplan(plan);
        plan = nullptr;
    }
    if (table.qualified_name != nullptr)
        pfree(table.qualified_name);
    table.qualified_name = nullptr;
    table.relid = InvalidOid;
    table.owner = InvalidOid;
}

Oid owner_of(Oid relid)
{
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple))
        return InvalidOid;
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
    ReleaseSysCache(tuple);
    return owner;
}

}  // namespace

/* The schema of the extension tusk (PostgreSQL 15 does not export get_extension_schema). */
Oid extension_schema_of(Oid extension)
{
    Relation catalog = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(extension));
    SysScanDesc scan = systable_beginscan(catalog, ExtensionOidIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    Oid schema = HeapTupleIsValid(tuple)
                     ? reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->extnamespace
                     : InvalidOid;
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    return schema;
}

namespace {

/* Finds the table (again, after an invalidation); false when this database has none. */
bool find_table()
{
    if (table.relid != InvalidOid && !table_recheck)
        return true;
    table_recheck = false;
    if (table.relid != InvalidOid) {
        Oid owner = owner_of(table.relid);
        /* Renamed or moved: the plans name it, so look it up again. */
        char *name = owner != InvalidOid ? get_rel_name(table.relid) : nullptr;
        if (name != nullptr && strcmp(name, kTableName) == 0 &&
            get_rel_namespace(table.relid) == table.schema) {
            table.owner = owner; /* ALTER TABLE ... OWNER TO changes who tusk acts as */
            return true;
        }
        forget_table();
    }
    Oid extension = get_extension_oid("tusk", true);
    if (extension == InvalidOid)
        return false;
    Oid schema = extension_schema_of(extension);
    Oid relid = get_relname_relid(kTableName, schema);
    /* Only the extension's own table: never one that someone else created under its name. */
    if (relid == InvalidOid || getExtensionOfObject(RelationRelationId, relid) != extension)
        return false;
    /* Still at 0.1.0 (no validity column): L3 waits for ALTER EXTENSION tusk UPDATE. */
    if (get_attnum(relid, "validity") == InvalidAttrNumber)
        return false;
    Oid owner = owner_of(relid);
    char *schema_name = get_namespace_name(schema);
    if (owner == InvalidOid || schema_name == nullptr)
        return false;
    if (!callback_registered) {
        CacheRegisterRelcacheCallback(on_relcache_invalidation, (Datum) 0);
        callback_registered = true;
    }
    table.qualified_name = MemoryContextStrdup(TopMemoryContext,
                                               quote_qualified_identifier(schema_name, kTableName));
    table.relid = relid;
    table.owner = owner;
    table.schema = schema;
    return true;
}

/* The plan of a statement, prepared on first use; SPI must be connected. */
SPIPlanPtr plan_for(Statement statement)
{
    if (table.plans[statement] != nullptr)
        return table.plans[statement];
    const StatementText &text = statement_texts[statement];
    char *sql = psprintf(text.sql, table.qualified_name);
    SPIPlanPtr plan = SPI_prepare(sql, text.nargs, const_cast<Oid *>(text.types));
    if (plan == nullptr)
        elog(ERROR, "tusk: could not prepare an L3 statement: %s", SPI_result_code_string(SPI_result));
    SPI_keepplan(plan);
    table.plans[statement] = plan;
    return plan;
}

/* Runs a prepared statement; raises when SPI reports anything but expected. */
void execute(Statement statement, Datum *args, bool read_only, long limit, int expected)
{
    int rc = SPI_execute_plan(plan_for(statement), args, nullptr, read_only, limit);
    if (rc != expected)
        elog(ERROR, "tusk: L3 statement failed: %s", SPI_result_code_string(rc));
}

/*
 * Runs body() connected to SPI as the table's owner, in a security-
 * restricted operation; the caller's identity comes back also on error.
 */
template <typename Body> void as_table_owner(Body &&body)
{
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(table.owner,
                           saved_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    /* tusk's own reads of its table are no fill's dependencies (a nested lookup inside a fill), its writes retire nothing. */
    FillRecorder *fill = fill_activate(nullptr);
    bool own = invalidation_own_statements_begin();
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "tusk: SPI_connect failed");
        body();
        SPI_finish();
    }
    PG_FINALLY();
    {
        SetUserIdAndSecContext(saved_user, saved_context);
        fill_activate(fill);
        invalidation_own_statements_end(own);
    }
    PG_END_TRY();
}

/*
 * Runs write() in a subtransaction with a short lock_timeout; when it
 * returns false (nothing to keep) the subtransaction is rolled back. An
 * error rolls it back too and is counted and logged (rarely), except a
 * cancel, which is raised again. Returns what write() returned, or false
 * after an error.
 */
template <typename Write> bool write_in_subtransaction(Write &&write)
{
    bool wrote = false;
    ErrorData *error = in_subtransaction(kFillLockTimeout, write, &wrote);
    if (error == nullptr)
        return wrote;
    if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
        ReThrowError(error);
    if (error->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE) {
        /* Unexpected (the table damaged or gone, no disk space): say so, once a minute per backend. */
        static TimestampTz last_report = 0;
        count(&L3Shared::errors);
        TimestampTz now = GetCurrentTimestamp();
        if (TimestampDifferenceExceeds(last_report, now, 60 * 1000)) {
            last_report = now;
            ereport(WARNING, (errmsg("tusk: could not write the L3 cache: %s", error->message),
                              errdetail("The value was kept in the other tiers; L3 write errors "
                                        "are counted in tusk_cache_stats and reported once a minute.")));
        }
    }
    FreeErrorData(error);
    return false;
}

Datum role_datum(const EncodedKey &key)
{
    return ObjectIdGetDatum(core::scope_of(key.bytes).role);
}

Datum user_key_datum(const EncodedKey &key)
{
    return PointerGetDatum(cstring_to_text_with_len(reinterpret_cast<const char *>(key.bytes) +
                                                        core::kScopeBytes,
                                                    int(key.length - core::kScopeBytes)));
}

Datum fingerprint_datum(const core::Fingerprint &fingerprint)
{
    bytea *out = static_cast<bytea *>(palloc(VARHDRSZ + 16));
    SET_VARSIZE(out, VARHDRSZ + 16);
    auto *bytes = reinterpret_cast<uint8 *>(VARDATA(out));
    for (int i = 0; i < 8; i++) {
        bytes[i] = uint8(fingerprint.lo >> (8 * i));
        bytes[8 + i] = uint8(fingerprint.hi >> (8 * i));
    }
    return PointerGetDatum(out);
}

/* false for anything that is not 16 bytes (not written by tusk). */
bool fingerprint_from(Datum datum, core::Fingerprint *out)
{
    bytea *stored = DatumGetByteaPP(datum);
    if (VARSIZE_ANY_EXHDR(stored) != 16)
        return false;
    const auto *bytes = reinterpret_cast<const uint8 *>(VARDATA_ANY(stored));
    out->lo = out->hi = 0;
    for (int i = 0; i < 8; i++) {
        out->lo |= uint64(bytes[i]) << (8 * i);
        out->hi |= uint64(bytes[8 + i]) << (8 * i);
    }
    return true;
}

/*
 * Writers of L3 batches hold this database's "L3 writers" lock (advisory
 * type, objsubid 4) in ShareLock from before their epoch check until they
 * commit; a delete, invalidate or flush, after bumping the epoch, takes it
 * in ExclusiveLock for a moment: so a batch whose check came before the
 * bump has committed by the time the delete's statement takes its
 * snapshot, and the delete sees (and removes) its rows. A batch that takes
 * the lock after that sees the bump and removes its own rows.
 */
LOCKTAG writers_tag()
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, 4);
    return tag;
}

void wait_for_l3_writers()
{
    LOCKTAG tag = writers_tag();
    (void) LockAcquire(&tag, ExclusiveLock, false, false);
    LockRelease(&tag, ExclusiveLock, false);
}

/* Why L3 cannot be written now, or None. */
L3Refusal write_refusal()
{
    if (RecoveryInProgress())
        return L3Refusal::Standby;
    if (XactReadOnly)
        return L3Refusal::ReadOnly;
    return L3Refusal::None;
}

/* Runs a delete statement with args as a write of tusk's own; rows removed or -1. */
int64 run_delete(Statement statement, Datum *args, L3Refusal *why)
{
    *why = L3Refusal::None;
    if (!find_table())
        return 0;
    *why = write_refusal();
    if (*why != L3Refusal::None) {
        if (!l3_enabled_setting)
            *why = L3Refusal::Disabled; /* nothing reads it meanwhile; no need to warn */
        return -1;
    }
    wait_for_l3_writers();
    TuskWriteToken token = tusk_write_begin();
    uint64 removed = 0;
    as_table_owner([&] {
        execute(statement, args, false, 0, SPI_OK_DELETE);
        removed = SPI_processed;
    });
    tusk_write_end(token);
    return int64(removed);
}

}  // namespace

void l3_define_gucs()
{
    DefineCustomBoolVariable("tusk.l3_enabled", "Uses the L3 cache table (tusk_cache_l3).",
                             "When off, L3 is neither read nor filled; deletes still remove its rows.",
                             &l3_enabled_setting, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

void l3_request_shmem()
{
    RequestAddinShmemSpace(MAXALIGN(sizeof(L3Shared)));
}

void l3_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    shared = static_cast<L3Shared *>(ShmemInitStruct("tusk l3 counters", sizeof(L3Shared), &found));
    if (!found) {
        pg_atomic_init_u64(&shared->hits, 0);
        pg_atomic_init_u64(&shared->misses, 0);
        pg_atomic_init_u64(&shared->sets, 0);
        pg_atomic_init_u64(&shared->expirations, 0);
        pg_atomic_init_u64(&shared->errors, 0);
    }
    LWLockRelease(AddinShmemInitLock);
}

bool l3_enabled()
{
    return l3_enabled_setting && find_table();
}

bool l3_writable()
{
    return l3_enabled() && write_refusal() == L3Refusal::None && !IsolationUsesXactSnapshot();
}

Jsonb *l3_get(const EncodedKey &key, const core::Fingerprint *want, int64 now, int64 *expires_at,
              core::Fingerprint *found, bool *settled, uint8_t **validity, size_t *validity_length)
{
    *validity = nullptr;
    *validity_length = 0;
    if (!l3_enabled())
        return nullptr;
    /* Never wait for the table (VACUUM FULL, TRUNCATE, a DROP in progress): skip L3. */
    if (!ConditionalLockRelationOid(table.relid, AccessShareLock)) {
        count(&L3Shared::misses);
        return nullptr;
    }
    Datum args[2] = {role_datum(key), user_key_datum(key)};
    MemoryContext caller = CurrentMemoryContext;
    Jsonb *value = nullptr;
    core::Fingerprint stored;
    TimestampTz stored_expiry = 0;
    TransactionId xmax = InvalidTransactionId;
    as_table_owner([&] {
        /* The latest committed rows, and this transaction's own deletions (see the header). */
        int rc = SPI_execute_snapshot(plan_for(Get), args, nullptr, GetLatestSnapshot(),
                                      InvalidSnapshot, true, false, 1);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "tusk: L3 lookup failed: %s", SPI_result_code_string(rc));
        if (SPI_processed != 1)
            return;
        HeapTuple row = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool null;
        stored_expiry = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &null));
        if (stored_expiry <= now || !fingerprint_from(SPI_getbinval(row, desc, 1, &null), &stored))
            return;
        if (want != nullptr && *want != stored)
            return;
        xmax = DatumGetTransactionId(SPI_getbinval(row, desc, 4, &null));
        bool validity_null = true;
        Datum stored_validity = SPI_getbinval(row, desc, 5, &validity_null);
        MemoryContext spi = MemoryContextSwitchTo(caller);
        value = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 2, &null));
        /* A row without one (written by 0.1.0) is never current: validity stays empty. */
        if (!validity_null) {
            bytea *bytes = DatumGetByteaPP(stored_validity);
            *validity_length = VARSIZE_ANY_EXHDR(bytes);
            *validity = static_cast<uint8_t *>(palloc(*validity_length + 1));
            memcpy(*validity, VARDATA_ANY(bytes), *validity_length);
        }
        MemoryContextSwitchTo(spi);
    });
    if (value != nullptr && !validity_current(*validity, *validity_length))
        value = nullptr; /* something it read has changed since (or it cannot show that nothing has) */
    if (value == nullptr) {
        count(&L3Shared::misses);
        return nullptr;
    }
    count(&L3Shared::hits);
    if (expires_at != nullptr)
        *expires_at = stored_expiry;
    if (found != nullptr)
        *found = stored;
    /*
     * A row that an open transaction is deleting, replacing or locking may be
     * on its way out. (A deleter that aborted leaves xmax behind: that row is
     * settled. A multixact xmax is read as an xid here: rare in this table,
     * and then the worst case is one copy-up the deleter will not undo.)
     */
    if (settled != nullptr)
        *settled = !TransactionIdIsValid(xmax) ||
                   !(TransactionIdIsCurrentTransactionId(xmax) || TransactionIdIsInProgress(xmax));
    return value;
}

/* Rows per statement, and value bytes per statement (an array is at most 1 GB). */
constexpr int kBatchRows = 1000;
constexpr Size kBatchBytes = 64 * 1024 * 1024;

/* Writes rows[0..count) (PutBatch), or deletes their keys (DeleteBatch), a statement per chunk. SPI connected. */
uint64 write_chunks(Statement statement, const L3Row *rows, int count, int64 now)
{
    uint64 done = 0;
    int start = 0;
    while (start < count) {
        int end = start;
        Size bytes = 0;
        while (end < count && end - start < kBatchRows && (end == start || bytes < kBatchBytes)) {
            bytes += statement == PutBatch ? VARSIZE_ANY(rows[end].value) : 0;
            end++;
        }
        int n = end - start;
        /* This chunk's arrays and copies go as soon as its statement has run. */
        MemoryContext chunk = AllocSetContextCreate(CurrentMemoryContext, "tusk L3 chunk", ALLOCSET_DEFAULT_SIZES);
        MemoryContext spi = MemoryContextSwitchTo(chunk);
        Datum *roles = static_cast<Datum *>(palloc(sizeof(Datum) * n));
        Datum *keys = static_cast<Datum *>(palloc(sizeof(Datum) * n));
        for (int i = 0; i < n; i++) {
            roles[i] = role_datum(rows[start + i].key);
            keys[i] = user_key_datum(rows[start + i].key);
        }
        Datum args[7];
        args[0] = PointerGetDatum(construct_array(roles, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
        args[1] = PointerGetDatum(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT));
        if (statement == PutBatch) {
            Datum *fingerprints = static_cast<Datum *>(palloc(sizeof(Datum) * n));
            Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * n));
            Datum *expiries = static_cast<Datum *>(palloc(sizeof(Datum) * n));
            Datum *validities = static_cast<Datum *>(palloc(sizeof(Datum) * n));
            for (int i = 0; i < n; i++) {
                const L3Row &row = rows[start + i];
                bytea *validity = static_cast<bytea *>(palloc(VARHDRSZ + row.validity_length));
                SET_VARSIZE(validity, VARHDRSZ + row.validity_length);
                memcpy(VARDATA(validity), row.validity, row.validity_length);
                validities[i] = PointerGetDatum(validity);
                fingerprints[i] = fingerprint_datum(rows[start + i].fingerprint);
                values[i] = PointerGetDatum(rows[start + i].value);
                expiries[i] = TimestampTzGetDatum(rows[start + i].expires_at);
            }
            args[2] = PointerGetDatum(construct_array(fingerprints, n, BYTEAOID, -1, false, TYPALIGN_INT));
            args[3] = PointerGetDatum(construct_array(values, n, JSONBOID, -1, false, TYPALIGN_INT));
            args[4] = PointerGetDatum(construct_array(expiries, n, TIMESTAMPTZOID, sizeof(TimestampTz),
                                                      FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
            args[5] = TimestampTzGetDatum(now);
            args[6] = PointerGetDatum(construct_array(validities, n, BYTEAOID, -1, false, TYPALIGN_INT));
        }
        MemoryContextSwitchTo(spi);
        execute(statement, args, false, 0, statement == PutBatch ? SPI_OK_INSERT : SPI_OK_DELETE);
        done += SPI_processed;
        MemoryContextDelete(chunk);
        start = end;
    }
    return done;
}

L3BatchResult l3_put_batch(const L3Row *rows, int count, const L3Row *stale, int stale_count, int64 now)
{
    if ((count <= 0 && stale_count <= 0) || !l3_writable())
        return L3BatchResult::Skipped;
    {
        LOCKTAG tag = writers_tag();
        (void) LockAcquire(&tag, ShareLock, false, false); /* until this transaction ends */
    }
    /* Everything made here (arrays, detoasted copies) goes when the batch is done. */
    MemoryContext batch = AllocSetContextCreate(CurrentMemoryContext, "tusk L3 batch", ALLOCSET_DEFAULT_SIZES);
    MemoryContext caller = MemoryContextSwitchTo(batch);
    Datum sweep_args[2] = {TimestampTzGetDatum(now), Int64GetDatum(int64(kSweepPerFill) * (count + 1))};
    uint64 written = 0, swept = 0;
    bool invalidated = false;
    /*
     * Not bracketed by tusk_write_begin/end: this runs at PRE_COMMIT, after
     * pending.cpp has judged every value's write mark, and the transaction
     * ends next, so there is nothing left for the bracket to protect.
     */
    bool ok = write_in_subtransaction([&]() -> bool {
        /* A table locked by VACUUM FULL or TRUNCATE: skip, never wait. */
        if (!ConditionalLockRelationOid(table.relid, RowExclusiveLock))
            return false;
        as_table_owner([&] {
            write_chunks(DeleteBatch, stale, stale_count, now);
            written = write_chunks(PutBatch, rows, count, now);
            /*
             * A delete, invalidate or flush since the caller's check: the
             * rows may be what it removed. Remove them again instead, so L3
             * keeps no older value than the other tiers either.
             */
            auto *moved = static_cast<L3Row *>(palloc(sizeof(L3Row) * (count + 1)));
            int n_moved = 0;
            for (int i = 0; i < count; i++)
                if (explicit_epoch(rows[i].key.hash) != rows[i].epoch)
                    moved[n_moved++] = rows[i];
            if (n_moved > 0) {
                write_chunks(DeleteBatch, moved, n_moved, now);
                invalidated = true;
                written -= std::min<uint64>(written, uint64(n_moved));
            }
            execute(Sweep, sweep_args, false, 0, SPI_OK_DELETE);
            swept = SPI_processed;
        });
        return true;
    });
    MemoryContextSwitchTo(caller);
    MemoryContextDelete(batch);
    if (!ok)
        return L3BatchResult::Failed;
    count_rows(&L3Shared::sets, written);
    count_rows(&L3Shared::expirations, swept);
    return invalidated ? L3BatchResult::Invalidated : L3BatchResult::Written;
}

int l3_delete(const EncodedKey &key, L3Refusal *why)
{
    Datum args[2] = {role_datum(key), user_key_datum(key)};
    return int(run_delete(Delete, args, why));
}

int64 l3_delete_prefix(const EncodedKey &prefix, L3Refusal *why)
{
    Datum args[2] = {role_datum(prefix), user_key_datum(prefix)};
    return run_delete(DeletePrefix, args, why);
}

int64 l3_delete_all(L3Refusal *why)
{
    return run_delete(DeleteAll, nullptr, why);
}

int64 l3_sweep_expired(int64 now, int64 limit)
{
    if (!find_table() || write_refusal() != L3Refusal::None)
        return -1;
    Datum args[2] = {TimestampTzGetDatum(now), Int64GetDatum(limit)};
    uint64 removed = 0;
    as_table_owner([&] {
        execute(Sweep, args, false, 0, SPI_OK_DELETE);
        removed = SPI_processed;
    });
    count_rows(&L3Shared::expirations, removed);
    return int64(removed);
}

void l3_stats(L3Stats &out, int64 *entries, int64 *bytes)
{
    out = L3Stats{};
    if (shared != nullptr) {
        out.hits = pg_atomic_read_u64(&shared->hits);
        out.misses = pg_atomic_read_u64(&shared->misses);
        out.sets = pg_atomic_read_u64(&shared->sets);
        out.expirations = pg_atomic_read_u64(&shared->expirations);
        out.errors = pg_atomic_read_u64(&shared->errors);
    }
    *entries = *bytes = -1;
    if (!find_table())
        return;
    Datum args[2] = {TimestampTzGetDatum(GetCurrentTimestamp()), ObjectIdGetDatum(table.relid)};
    int64 rows = -1, size = -1;
    as_table_owner([&] {
        execute(Count, args, false, 1, SPI_OK_SELECT);
        bool null;
        rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null));
        size = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &null));
    });
    *entries = rows;
    *bytes = size;
}

void l3_count_dropped() { count(&L3Shared::errors); }

void l3_reset_counters()
{
    if (shared == nullptr)
        return;
    pg_atomic_write_u64(&shared->hits, 0);
    pg_atomic_write_u64(&shared->misses, 0);
    pg_atomic_write_u64(&shared->sets, 0);
    pg_atomic_write_u64(&shared->expirations, 0);
    pg_atomic_write_u64(&shared->errors, 0);
}

}  // namespace tusk
