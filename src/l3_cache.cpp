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
 * Transactions: rows are written in the caller's transaction, so they
 * appear when it commits and vanish when it rolls back. Writes skip
 * read-only transactions and hot standbys, which read the table only.
 *
 * Waiting: a fill never waits for another transaction. Every write of a
 * key first takes a transaction-level lock on the key's hash (an advisory
 * lock tag of tusk's own class, kKeyLockClass): fills and the sweep try it
 * without waiting and skip the key when another open transaction holds it;
 * tusk_cache_delete waits for it, as a DELETE waits for a row lock. Fills
 * run in a subtransaction with a short lock_timeout as well, which bounds
 * the wait on rows that tusk_cache_invalidate or tusk_cache_flush locked
 * without key locks; any error there skips L3 (counted in errors) instead
 * of failing the call, except a cancel, which is raised again.
 *
 * Expired rows are never served. Each fill also removes up to
 * kSweepPerFill expired rows (oldest first), so the table cannot grow past
 * its live rows by more than what expires between fills.
 *
 * Shared state: the l3 counters only, atomics (pg_atomic_uint64), no lock.
 * Plain C-style code: no C++ object with a destructor lives in these frames.
 */
#include "l3_cache.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
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
#include "utils/timestamp.h"
}

#include "core/cache_key.hpp"
#include "pending.hpp"

namespace tusk {

namespace {

constexpr const char *kTableName = "tusk_cache_l3";
/* locktag_field4 of tusk's key locks: advisory locks use 1 and 2. */
constexpr uint16 kKeyLockClass = 0x7475;
constexpr int kSweepPerFill = 8;
/* The longest a fill waits for a row lock that no key lock announced. */
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

void count(pg_atomic_uint64 L3Shared::*counter, uint64 n = 1)
{
    if (shared != nullptr && n > 0)
        pg_atomic_fetch_add_u64(&(shared->*counter), n);
}

enum Statement { Get, Put, Delete, DeletePrefix, DeleteAll, SweepFind, SweepDelete, Count, kStatements };

struct StatementText {
    const char *sql;
    int nargs;
    Oid types[3];
};

/* %s is the table's qualified name. Put has six arguments: see put_types. */
const StatementText statement_texts[kStatements] = {
    {"SELECT fingerprint, value, expires_at FROM %s"
     " WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
     2, {OIDOID, TEXTOID}},
    {"INSERT INTO %s AS l3 (role_id, key, fingerprint, value, expires_at, stored_at)"
     " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ON CONSTRAINT tusk_cache_l3_pkey DO UPDATE"
     " SET fingerprint = excluded.fingerprint, value = excluded.value,"
     " expires_at = excluded.expires_at, stored_at = excluded.stored_at",
     6, {}},
    {"DELETE FROM %s WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
     2, {OIDOID, TEXTOID}},
    {"DELETE FROM %s WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.^@) $2",
     2, {OIDOID, TEXTOID}},
    {"DELETE FROM %s", 0, {}},
    {"SELECT role_id, key FROM %s WHERE expires_at OPERATOR(pg_catalog.<=) $1"
     " ORDER BY expires_at LIMIT $2",
     2, {TIMESTAMPTZOID, INT8OID}},
    {"DELETE FROM %s WHERE role_id OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
     " AND expires_at OPERATOR(pg_catalog.<=) $3",
     3, {OIDOID, TEXTOID, TIMESTAMPTZOID}},
    {"SELECT pg_catalog.count(*), pg_catalog.pg_total_relation_size($2) FROM %s"
     " WHERE expires_at OPERATOR(pg_catalog.>) $1",
     2, {TIMESTAMPTZOID, REGCLASSOID}},
};
const Oid put_types[6] = {OIDOID, TEXTOID, BYTEAOID, JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID};

/* Backend-local: where the table is, and the plans prepared for it (in CacheMemoryContext). */
struct Table {
    Oid relid = InvalidOid;
    Oid owner = InvalidOid;
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

/* The schema of the extension tusk (PostgreSQL 15 does not export get_extension_schema). */
Oid extension_schema(Oid extension)
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

/* Finds the table (again, after an invalidation); false when this database has none. */
bool find_table()
{
    if (table.relid != InvalidOid && !table_recheck)
        return true;
    table_recheck = false;
    if (table.relid != InvalidOid) {
        Oid owner = owner_of(table.relid);
        if (owner != InvalidOid) {
            table.owner = owner; /* ALTER TABLE ... OWNER TO changes who tusk acts as */
            return true;
        }
        forget_table();
    }
    Oid extension = get_extension_oid("tusk", true);
    if (extension == InvalidOid)
        return false;
    Oid schema = extension_schema(extension);
    Oid relid = get_relname_relid(kTableName, schema);
    Oid owner = relid != InvalidOid ? owner_of(relid) : InvalidOid;
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
    return true;
}

/* The plan of a statement, prepared on first use; SPI must be connected. */
SPIPlanPtr plan_for(Statement statement)
{
    if (table.plans[statement] != nullptr)
        return table.plans[statement];
    const StatementText &text = statement_texts[statement];
    char *sql = psprintf(text.sql, table.qualified_name);
    const Oid *types = statement == Put ? put_types : text.types;
    SPIPlanPtr plan = SPI_prepare(sql, text.nargs, const_cast<Oid *>(types));
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
    }
    PG_END_TRY();
}

/*
 * Runs write() (which returns whether it wrote) in a subtransaction with a
 * short lock_timeout. An error rolls the subtransaction back and is
 * counted and logged (rarely), except a cancel or shutdown, which is
 * raised again. Returns what write() returned, or false after an error.
 */
template <typename Write> bool write_in_subtransaction(Write &&write)
{
    MemoryContext context = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool wrote = false;
    ErrorData *volatile error = nullptr;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
    PG_TRY();
    {
        int nest_level = NewGUCNestLevel();
        set_config_option("lock_timeout", kFillLockTimeout, PGC_USERSET, PGC_S_SESSION,
                          GUC_ACTION_SAVE, true, 0, false);
        wrote = write();
        AtEOXact_GUC(true, nest_level);
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_END_TRY();
    if (error == nullptr)
        return wrote;
    if (error->sqlerrcode == ERRCODE_QUERY_CANCELED || error->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
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

/* The transaction-level lock on a key's hash; dontWait makes it a try. */
bool lock_key(uint64 hash, bool dont_wait)
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, uint32(hash >> 32), uint32(hash), kKeyLockClass);
    return LockAcquire(&tag, ExclusiveLock, false, dont_wait) != LOCKACQUIRE_NOT_AVAIL;
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

/* Removes up to kSweepPerFill expired rows whose key lock is free; how many. SPI connected. */
uint64 sweep_expired(int64 now)
{
    Datum find_args[2] = {TimestampTzGetDatum(now), Int64GetDatum(kSweepPerFill)};
    execute(SweepFind, find_args, false, 0, SPI_OK_SELECT);
    SPITupleTable *found = SPI_tuptable;
    uint64 rows = SPI_processed;
    uint64 removed = 0;
    for (uint64 i = 0; i < rows; i++) {
        bool null;
        Oid role = DatumGetObjectId(SPI_getbinval(found->vals[i], found->tupdesc, 1, &null));
        text *user_key = DatumGetTextPP(SPI_getbinval(found->vals[i], found->tupdesc, 2, &null));
        size_t length = VARSIZE_ANY_EXHDR(user_key);
        auto *encoded = static_cast<uint8_t *>(palloc(core::kScopeBytes + length));
        size_t encoded_length = core::encode_key(core::CacheScope{MyDatabaseId, role},
                                                 VARDATA_ANY(user_key), length, encoded);
        if (!lock_key(core::key_hash(encoded, encoded_length), true))
            continue;
        Datum args[3] = {ObjectIdGetDatum(role), PointerGetDatum(user_key), TimestampTzGetDatum(now)};
        execute(SweepDelete, args, false, 0, SPI_OK_DELETE);
        removed += SPI_processed;
    }
    return removed;
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
int64 run_delete(Statement statement, Datum *args, L3Refusal *why, const uint64 *key_hash)
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
    TuskWriteToken token = tusk_write_begin();
    if (key_hash != nullptr)
        lock_key(*key_hash, false); /* waits for a transaction that is writing the key */
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
    return l3_enabled() && write_refusal() == L3Refusal::None;
}

Jsonb *l3_get(const EncodedKey &key, const core::Fingerprint *want, int64 now, int64 *expires_at,
              core::Fingerprint *found)
{
    if (!l3_enabled())
        return nullptr;
    Datum args[2] = {role_datum(key), user_key_datum(key)};
    MemoryContext caller = CurrentMemoryContext;
    Jsonb *value = nullptr;
    core::Fingerprint stored;
    TimestampTz stored_expiry = 0;
    as_table_owner([&] {
        /* A fresh snapshot: it sees what this statement removed or wrote before. */
        execute(Get, args, false, 1, SPI_OK_SELECT);
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
        MemoryContext spi = MemoryContextSwitchTo(caller);
        value = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 2, &null));
        MemoryContextSwitchTo(spi);
    });
    if (value == nullptr) {
        count(&L3Shared::misses);
        return nullptr;
    }
    count(&L3Shared::hits);
    if (expires_at != nullptr)
        *expires_at = stored_expiry;
    if (found != nullptr)
        *found = stored;
    return value;
}

bool l3_put(const EncodedKey &key, const core::Fingerprint &fingerprint, const struct varlena *value,
            int64 expires_at, int64 now)
{
    if (!l3_writable())
        return false;
    Datum args[6] = {role_datum(key),
                     user_key_datum(key),
                     fingerprint_datum(fingerprint),
                     PointerGetDatum(value),
                     TimestampTzGetDatum(expires_at),
                     TimestampTzGetDatum(now)};
    uint64 hash = key.hash;
    uint64 swept = 0;
    TuskWriteToken token = tusk_write_begin();
    bool wrote = write_in_subtransaction([&]() -> bool {
        if (!lock_key(hash, true))
            return false; /* another open transaction is writing this key */
        as_table_owner([&] {
            execute(Put, args, false, 0, SPI_OK_INSERT);
            swept = sweep_expired(now);
        });
        return true;
    });
    tusk_write_end(token);
    if (wrote) {
        count(&L3Shared::sets);
        count(&L3Shared::expirations, swept);
    }
    return wrote;
}

int l3_delete(const EncodedKey &key, L3Refusal *why)
{
    Datum args[2] = {role_datum(key), user_key_datum(key)};
    return int(run_delete(Delete, args, why, &key.hash));
}

int64 l3_delete_prefix(const EncodedKey &prefix, L3Refusal *why)
{
    Datum args[2] = {role_datum(prefix), user_key_datum(prefix)};
    return run_delete(DeletePrefix, args, why, nullptr);
}

int64 l3_delete_all(L3Refusal *why)
{
    return run_delete(DeleteAll, nullptr, why, nullptr);
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
