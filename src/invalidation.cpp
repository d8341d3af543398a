/*
 * invalidation.cpp: automatic invalidation (see invalidation.hpp).
 *
 * Shared state: one core::DependencyClock, "tusk dependency clock",
 * requested in shmem_request_hook and formatted in shmem_startup_hook
 * under a new random domain at every server start, and a counter of
 * bumped slots. Locking rules: none; everything is an atomic (the clock's
 * ordering argument is in core/dependency_clock.hpp).
 *
 * Backend-local: the recorder stack of the fills in progress, and the
 * slots the current transaction wrote (a fixed array, so that the commit
 * callback never allocates). Plain C-style code: no C++ object with a
 * destructor lives in these frames.
 */
#include "invalidation.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_control.h"
#include "common/controldata_utils.h"
#include "storage/fd.h"
#include <sys/stat.h>
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/sinval.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* From libpq/auth.h, whose includes need the GSSAPI headers. */
struct Port;
typedef void (*ClientAuthentication_hook_type)(struct Port *, int);
extern PGDLLIMPORT ClientAuthentication_hook_type ClientAuthentication_hook;
}

#include <algorithm>

#include "core/dependency_clock.hpp"

namespace tusk {

namespace {

bool invalidation_setting = true; /* tusk.invalidation */

constexpr uint64_t kEpochBuckets = 1024;

struct InvalidationShared {
    pg_atomic_uint64 invalidations;
    pg_atomic_uint64 explicit_epoch; /* every key */
    pg_atomic_uint64 explicit_buckets[kEpochBuckets]; /* keys by hash */
};
core::DependencyClock *clock_state = nullptr;
InvalidationShared *shared = nullptr;

FillRecorder *current_fill = nullptr;

/*
 * The clock when this backend's previous transaction ended (or when it
 * authenticated): before every snapshot of the current transaction, so a
 * value that the current transaction computed in SQL and hands to
 * tusk_cache_set can be stamped with it. 0 before the first sample.
 */
uint64 clock_at_transaction_start = 0;
XLogRecPtr replay_at_transaction_start = InvalidXLogRecPtr;

/* On a hot standby: how far replay has got (its commits run no tusk code, so this is the clock there). */
XLogRecPtr replay_position() { return GetXLogReplayRecPtr(nullptr); }

void sample_transaction_start()
{
    clock_at_transaction_start = clock_state->sample();
    replay_at_transaction_start = RecoveryInProgress() ? replay_position() : InvalidXLogRecPtr;
}

/* What the current transaction wrote. */
constexpr int kMaxWrittenSlots = 512;
uint32 written_slots[kMaxWrittenSlots];
int written_count = 0;
bool wrote_database = false;   /* too many to list, or something that concerns the whole database */
bool wrote_everything = false; /* a role changed: every value of every database */
constexpr int kMaxSeenRelations = 64;
Oid seen_relations[kMaxSeenRelations]; /* relations already expanded this transaction */
int seen_count = 0;

/*
 * Function and schema changes made by tusk's own ALTER EXTENSION tusk
 * UPDATE in this transaction (-1: unknown). Its script replaces only
 * tusk's own functions, whose meaning for stored values does not change:
 * when they are all the transaction changed, the database's values stay.
 */
int64 own_upgrade_changes = 0;

ExecutorCheckPerms_hook_type previous_check_perms = nullptr;
ClientAuthentication_hook_type previous_client_authentication = nullptr;

/* A new session: its first transaction's snapshots come after this. */
void client_authentication(Port *port, int status)
{
    if (clock_state != nullptr)
        sample_transaction_start();
    if (previous_client_authentication != nullptr)
        previous_client_authentication(port, status);
}
ProcessUtility_hook_type previous_process_utility = nullptr;

uint32 slot_of(Oid relation) { return core::dependency_slot(MyDatabaseId, relation); }

/* Bumped by every commit that writes anything in the database (relation 1 is no relation's OID). */
uint32 any_write_slot() { return core::dependency_slot(MyDatabaseId, 1); }

void forget_writes()
{
    own_upgrade_changes = 0;
    written_count = 0;
    wrote_database = false;
    wrote_everything = false;
    seen_count = 0;
}

void note_written_slot(uint32 slot)
{
    for (int i = 0; i < written_count; i++)
        if (written_slots[i] == slot)
            return;
    if (written_count == kMaxWrittenSlots) {
        wrote_database = true;
        return;
    }
    written_slots[written_count++] = slot;
}

bool tracking_writes()
{
    /* Autovacuum changes no data that a query reads: its statistics updates invalidate nothing. */
    return invalidation_setting && clock_state != nullptr && !IsAutoVacuumWorkerProcess();
}

/* note(slot) for relation and, when it has any, each of its partitions or inheritance children. */
template <typename Note> void for_relation_and_descendants(Oid relation, Note &&note)
{
    note(slot_of(relation));
    if (!has_subclass(relation))
        return;
    List *descendants = find_all_inheritors(relation, NoLock, nullptr);
    ListCell *lc;
    foreach (lc, descendants)
        if (lfirst_oid(lc) != relation) /* find_all_inheritors lists the relation itself first */
            note(slot_of(lfirst_oid(lc)));
    list_free(descendants);
}

/* A write to relation: it and its descendants. */
void note_written_relation(Oid relation)
{
    for (int i = 0; i < seen_count; i++)
        if (seen_relations[i] == relation)
            return;
    if (seen_count < kMaxSeenRelations)
        seen_relations[seen_count++] = relation;
    for_relation_and_descendants(relation, note_written_slot);
}

bool own_statements = false; /* tusk's statements on its own tables are running */

bool check_perms(List *range_table, bool ereport_on_violation)
{
    bool allowed = previous_check_perms == nullptr || previous_check_perms(range_table, ereport_on_violation);
    if (!allowed || !tracking_writes() || own_statements)
        return allowed;
    ListCell *lc;
    foreach (lc, range_table) {
        RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
        if (rte->rtekind == RTE_RELATION && (rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)))
            note_written_relation(rte->relid);
    }
    return allowed;
}

/*
 * PRE_COMMIT: the transaction's own invalidation messages name every
 * relation whose catalog entries it changed (definition, privileges,
 * policies, row-level security, storage), and the catalog caches it
 * touched.
 */
bool changes_functions(const SharedInvalidationMessage &m)
{
    return m.id >= 0 && (m.cc.id == PROCOID || m.cc.id == NAMESPACEOID);
}

/* visit(message) for each invalidation message of the (top-level) transaction so far. */
template <typename Visit> void for_each_own_invalidation(Visit &&visit)
{
    SharedInvalidationMessage *messages = nullptr;
    bool init_file = false;
    int n = xactGetCommittedInvalidationMessages(&messages, &init_file);
    for (int i = 0; i < n; i++)
        visit(messages[i]);
    if (messages != nullptr)
        pfree(messages);
}

/* How many of the transaction's invalidation messages so far concern functions or schemas (-1 below top level). */
int64 function_changes_so_far()
{
    if (GetCurrentTransactionNestLevel() != 1)
        return -1;
    int64 count = 0;
    for_each_own_invalidation([&count](const SharedInvalidationMessage &m) {
        if (changes_functions(m))
            count++;
    });
    return count;
}

void note_catalog_changes()
{
    int64 function_changes = 0;
    for_each_own_invalidation([&function_changes](const SharedInvalidationMessage &m) {
        if (m.id == SHAREDINVALRELCACHE_ID) {
            if (m.rc.dbId != MyDatabaseId && m.rc.dbId != InvalidOid)
                return;
            if (m.rc.relId == InvalidOid)
                wrote_database = true;
            else
                note_written_slot(slot_of(m.rc.relId));
        } else if (m.id == SHAREDINVALCATALOG_ID) {
            wrote_database = true;
        } else if (changes_functions(m)) {
            /* A function's body or privileges, a schema's privileges: any query may use them. */
            function_changes++;
        }
    });
    if (function_changes > 0 && (own_upgrade_changes < 0 || function_changes > own_upgrade_changes))
        wrote_database = true;
}

/* Logical replication's apply worker writes without the executor's permission check. */
bool writes_untracked_here()
{
    return MyBgworkerEntry != nullptr && strcmp(MyBgworkerEntry->bgw_type, "logical replication worker") == 0;
}

/*
 * Bumps every written slot; `count` adds them to tusk_cache_stats'
 * invalidations. Run twice: at PRE_COMMIT (before the commit is visible:
 * every value filled before then is retired before anyone can see the
 * new data, which narrows the window the proof leaves to fills that
 * begin during the commit itself) and at COMMIT (after it is visible:
 * the bump the proof in core/dependency_clock.hpp relies on).
 */
void bump_written(bool count)
{
    if (written_count == 0 && !wrote_database && !wrote_everything)
        return;
    uint32 slots[kMaxWrittenSlots + 3];
    int n = 0;
    for (int i = 0; i < written_count; i++)
        slots[n++] = written_slots[i];
    if (wrote_database)
        slots[n++] = core::dependency_slot(MyDatabaseId, InvalidOid);
    /* Values that read too many relations to list them depend on this one. */
    slots[n++] = any_write_slot();
    if (wrote_everything)
        slots[n++] = core::kEverythingSlot;
    clock_state->bump(slots, size_t(n));
    if (count)
        pg_atomic_fetch_add_u64(&shared->invalidations, uint64(n));
}

void on_xact_event(XactEvent event, void *)
{
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            if (tracking_writes()) {
                note_catalog_changes();
                /* (a two-phase COMMIT PREPARED it applies has no transaction id of its own: every commit counts) */
                if (writes_untracked_here())
                    wrote_database = true;
                bump_written(false); /* (tracking_writes: the clock is there) */
            }
            break;
        case XACT_EVENT_COMMIT:
            /* The commit is visible to new snapshots now, and COMMIT has not returned yet. */
            if (clock_state != nullptr) {
                bump_written(true);
                sample_transaction_start();
            }
            forget_writes();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PREPARE: /* COMMIT PREPARED invalidates the database (process_utility) */
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            forget_writes();
            current_fill = nullptr;
            if (clock_state != nullptr)
                sample_transaction_start();
            break;
        default:
            break;
    }
}

void process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
                     ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    Node *stmt = pstmt->utilityStmt;
    if (tracking_writes()) {
        /* What a prepared transaction wrote is not known here: its commit concerns the whole database. */
        /* (and it may have changed roles, which concern every database) */
        if (IsA(stmt, TransactionStmt) && castNode(TransactionStmt, stmt)->kind == TRANS_STMT_COMMIT_PREPARED)
            wrote_everything = true;
        /*
         * A role that loses or gains a membership (a policy may test
         * NOT pg_has_role()) or an attribute (BYPASSRLS, SUPERUSER), or is
         * dropped (its members lose its privileges), may no longer read
         * what it or its members read before: every value goes. So for a
         * renamed role or database: L2 names them, and a new one may take
         * the old name. (Creating a role only adds one nobody used.)
         */
        bool renames_scope = IsA(stmt, RenameStmt) && (castNode(RenameStmt, stmt)->renameType == OBJECT_ROLE ||
                                                       castNode(RenameStmt, stmt)->renameType == OBJECT_DATABASE);
        if (IsA(stmt, GrantRoleStmt) || IsA(stmt, AlterRoleStmt) || IsA(stmt, DropRoleStmt) || renames_scope)
            wrote_everything = true;
    }
    bool own_upgrade = IsA(stmt, AlterExtensionStmt) && strcmp(castNode(AlterExtensionStmt, stmt)->extname, "tusk") == 0;
    int64 before = own_upgrade ? function_changes_so_far() : 0;
    if (previous_process_utility != nullptr)
        previous_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    if (own_upgrade && own_upgrade_changes >= 0) {
        int64 after = function_changes_so_far();
        own_upgrade_changes = (before < 0 || after < 0) ? -1 : own_upgrade_changes + (after - before);
    }
}

void add_slot(FillRecorder *r, uint32 slot)
{
    if (r->too_many)
        return;
    for (uint32 i = 0; i < r->count; i++)
        if (r->slots[i] == slot)
            return;
    /* More than a record can list (and room for the three below): every write to the database counts. */
    if (r->count + 3 >= core::kMaxValiditySlots) {
        r->too_many = true;
        return;
    }
    /* The slot array lives where r was begun (repalloc keeps a chunk's context). */
    if (r->count == r->capacity) {
        uint32 capacity = r->capacity == 0 ? 16 : r->capacity * 2;
        r->slots = static_cast<uint32 *>(r->slots == nullptr ? MemoryContextAlloc(r->context, sizeof(uint32) * capacity)
                                                             : repalloc(r->slots, sizeof(uint32) * capacity));
        r->capacity = capacity;
    }
    r->slots[r->count++] = slot;
}

/*
 * The saved clock: "pg_tusk_clock" in the data directory, written by the
 * postmaster when it exits after a clean shutdown (pg_control says
 * "shut down", so every commit's bump is in the counters), and removed as
 * soon as it is read. A crash, an immediate shutdown, a server run
 * without tusk in between (its shutdown checkpoint is another one) or a
 * copy that starts as a standby finds no usable file: a new domain then
 * retires every value that has dependencies.
 */
constexpr const char *kClockFile = "pg_tusk_clock";
constexpr uint64 kClockFileMagic = 0x314b434f4c434b54; /* "TKCLOCK1" */

struct SavedClockHeader {
    uint64 magic;
    uint64 slots;
    uint64 domain;
    uint64 clock;
    XLogRecPtr checkpoint;
};

/* The shutdown checkpoint pg_control names, or InvalidXLogRecPtr when the server did not shut down cleanly. */
XLogRecPtr clean_shutdown_checkpoint()
{
    bool crc_ok = false;
    ControlFileData *control = get_controlfile(DataDir, &crc_ok);
    XLogRecPtr checkpoint = InvalidXLogRecPtr;
    if (control != nullptr && crc_ok && control->state == DB_SHUTDOWNED)
        checkpoint = control->checkPoint;
    if (control != nullptr)
        pfree(control);
    return checkpoint;
}

void save_clock(int code, Datum)
{
    if (code != 0 || clock_state == nullptr)
        return;
    XLogRecPtr checkpoint = clean_shutdown_checkpoint();
    if (checkpoint == InvalidXLogRecPtr)
        return;
    SavedClockHeader header{kClockFileMagic, core::kDependencySlots, clock_state->domain(), 0, checkpoint};
    auto *counters = static_cast<uint64 *>(
        MemoryContextAllocExtended(TopMemoryContext, sizeof(uint64) * core::kDependencySlots, MCXT_ALLOC_NO_OOM));
    if (counters == nullptr)
        return;
    header.clock = clock_state->save(counters);
    char temp[MAXPGPATH];
    snprintf(temp, sizeof temp, "%s.tmp", kClockFile);
    FILE *file = AllocateFile(temp, PG_BINARY_W);
    bool ok = file != nullptr && fwrite(&header, sizeof header, 1, file) == 1 &&
              fwrite(counters, sizeof(uint64), core::kDependencySlots, file) == core::kDependencySlots;
    if (file != nullptr && FreeFile(file) != 0)
        ok = false;
    pfree(counters);
    if (ok)
        ok = durable_rename(temp, kClockFile, LOG) == 0;
    if (!ok) {
        unlink(temp);
        ereport(LOG, (errmsg("tusk: could not save the dependency clock; cached values with dependencies "
                             "will not be served after the restart")));
    }
}

bool signal_file_present(const char *name)
{
    struct stat st;
    return stat(name, &st) == 0;
}

/* The clock saved at the last clean shutdown, laid out in memory; nullptr when there is none to trust. */
core::DependencyClock *restore_saved_clock(void *memory)
{
    FILE *file = AllocateFile(kClockFile, PG_BINARY_R);
    if (file == nullptr)
        return nullptr;
    SavedClockHeader header;
    auto *counters = static_cast<uint64 *>(
        MemoryContextAllocExtended(TopMemoryContext, sizeof(uint64) * core::kDependencySlots, MCXT_ALLOC_NO_OOM));
    bool ok = counters != nullptr && fread(&header, sizeof header, 1, file) == 1 &&
              header.magic == kClockFileMagic && header.slots == core::kDependencySlots &&
              fread(counters, sizeof(uint64), core::kDependencySlots, file) == core::kDependencySlots;
    FreeFile(file);
    /* Read once: a crash after this start must not find it again. */
    durable_unlink(kClockFile, LOG);
    ok = ok && header.checkpoint != InvalidXLogRecPtr && header.checkpoint == clean_shutdown_checkpoint() &&
         !signal_file_present(STANDBY_SIGNAL_FILE) && !signal_file_present(RECOVERY_SIGNAL_FILE);
    core::DependencyClock *restored =
        ok ? core::DependencyClock::restore(memory, header.domain, header.clock, counters) : nullptr;
    if (counters != nullptr)
        pfree(counters);
    return restored;
}

}  // namespace

void invalidation_define_gucs()
{
    DefineCustomBoolVariable("tusk.invalidation",
                             "Invalidates cached values when the relations they read change.",
                             "Off: this session's writes invalidate nothing and its fills depend on nothing "
                             "(they are then bounded by their TTL only).",
                             &invalidation_setting, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
}

void invalidation_request_shmem()
{
    RequestAddinShmemSpace(MAXALIGN(core::DependencyClock::size()) + MAXALIGN(sizeof(InvalidationShared)));
}

void invalidation_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found_clock = false, found_counters = false;
    void *memory = ShmemInitStruct("tusk dependency clock", core::DependencyClock::size(), &found_clock);
    shared = static_cast<InvalidationShared *>(
        ShmemInitStruct("tusk invalidation counters", sizeof(InvalidationShared), &found_counters));
    if (!found_clock) {
        clock_state = restore_saved_clock(memory);
        if (clock_state == nullptr) {
            uint64 domain = 0;
            if (!pg_strong_random(&domain, sizeof domain))
                domain = uint64(GetCurrentTimestamp()) ^ (uint64(MyProcPid) << 32);
            clock_state = core::DependencyClock::format(memory, domain == 0 ? 1 : domain);
        }
        pg_atomic_init_u64(&shared->invalidations, 0);
        pg_atomic_init_u64(&shared->explicit_epoch, 0);
        for (auto &bucket : shared->explicit_buckets)
            pg_atomic_init_u64(&bucket, 0);
        /* The postmaster saves the clock when it exits after a clean shutdown. */
        if (!IsUnderPostmaster)
            on_shmem_exit(save_clock, 0);
    } else {
        clock_state = reinterpret_cast<core::DependencyClock *>(memory);
    }
    LWLockRelease(AddinShmemInitLock);
}

void invalidation_install_hooks()
{
    previous_check_perms = ExecutorCheckPerms_hook;
    ExecutorCheckPerms_hook = check_perms;
    previous_process_utility = ProcessUtility_hook;
    ProcessUtility_hook = process_utility;
    previous_client_authentication = ClientAuthentication_hook;
    ClientAuthentication_hook = client_authentication;
    RegisterXactCallback(on_xact_event, nullptr);
}

bool invalidation_active() { return invalidation_setting && clock_state != nullptr; }

void fill_begin(FillRecorder *recorder)
{
    *recorder = FillRecorder{};
    recorder->parent = current_fill;
    recorder->active = invalidation_active();
    recorder->context = CurrentMemoryContext;
    if (!recorder->active)
        recorder->flags |= core::kValidityNotTracked;
    /* Before the query's snapshot (see core/dependency_clock.hpp). */
    recorder->fill_clock = clock_state != nullptr ? clock_state->sample() : 0;
    if (RecoveryInProgress()) {
        recorder->flags |= core::kValidityReplay;
        recorder->replay = replay_position();
    }
    pg_memory_barrier();
    current_fill = recorder;
}

/* A value read on a standby is current only while replay stays where the oldest read left it. */
void absorb_replay(FillRecorder *into, uint16 flags, uint64 replay)
{
    if (!(flags & core::kValidityReplay))
        return;
    if (!(into->flags & core::kValidityReplay) || replay < into->replay)
        into->replay = replay;
    into->flags |= core::kValidityReplay;
}

void fill_absorb(FillRecorder *into, const FillRecorder *from)
{
    /* The outer value depends on what the inner fill read, as of the older of their clocks. */
    for (uint32 i = 0; i < from->count; i++)
        add_slot(into, from->slots[i]);
    into->flags |= from->flags & ~core::kValidityNotTracked;
    into->private_data |= from->private_data;
    into->fill_clock = std::min(into->fill_clock, from->fill_clock);
    into->too_many |= from->too_many;
    absorb_replay(into, from->flags, from->replay);
}

void fill_end(FillRecorder *recorder)
{
    current_fill = recorder->parent;
    if (recorder->parent != nullptr)
        fill_absorb(recorder->parent, recorder);
}

void fill_abandon(FillRecorder *recorder) { current_fill = recorder->parent; }

bool invalidation_own_statements_begin()
{
    bool previous = own_statements;
    own_statements = true;
    return previous;
}

void invalidation_own_statements_end(bool previous) { own_statements = previous; }

FillRecorder *fill_activate(FillRecorder *recorder)
{
    FillRecorder *previous = current_fill;
    current_fill = recorder;
    return previous;
}

void fill_note_plan(PlannedStmt *plan)
{
    FillRecorder *r = current_fill;
    if (r == nullptr || !r->active || plan == nullptr)
        return;
    ListCell *lc;
    foreach (lc, plan->rtable) {
        RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
        if (rte->rtekind != RTE_RELATION)
            continue;
        char kind = rte->relkind;
        if (kind == RELKIND_FOREIGN_TABLE || kind == RELKIND_SEQUENCE || IsCatalogRelationOid(rte->relid) ||
            rte->relid < FirstNormalObjectId) {
            /* Changes tusk cannot see: the value is bounded by its TTL only. */
            r->flags |= core::kValidityUntracked;
            continue;
        }
        if (get_rel_persistence(rte->relid) == RELPERSISTENCE_TEMP)
            r->private_data = true;
        add_slot(r, slot_of(rte->relid));
    }
}

void fill_note_value(const uint8_t *validity, size_t length)
{
    FillRecorder *r = current_fill;
    if (r == nullptr)
        return;
    core::ValidityHeader header;
    const uint8_t *slots;
    if (!core::decode_validity(validity, length, header, slots))
        return;
    r->flags |= header.flags & core::kValidityUntracked;
    absorb_replay(r, header.flags, header.replay);
    if (header.count == 0)
        return;
    for (uint32 i = 0; i < header.count; i++)
        add_slot(r, core::validity_slot(slots, i));
    r->fill_clock = std::min(r->fill_clock, header.fill_clock);
}

uint8_t *fill_validity(const FillRecorder *r, size_t *length)
{
    if (r->private_data)
        return nullptr;
    core::ValidityHeader header;
    header.flags = r->flags;
    header.domain = clock_state != nullptr ? clock_state->domain() : 0;
    header.fill_clock = r->fill_clock;
    header.replay = r->replay;
    uint32 n = 0;
    auto *slots = static_cast<uint32 *>(palloc(sizeof(uint32) * (r->count + 4)));
    if (r->active) {
        if (!r->too_many)
            for (uint32 i = 0; i < r->count; i++)
                slots[n++] = r->slots[i];
        else
            slots[n++] = any_write_slot(); /* too many to list: any write to the database */
        /* Every value computed by a query: changes to functions, schemas and roles. */
        slots[n++] = core::dependency_slot(MyDatabaseId, InvalidOid);
        slots[n++] = core::kEverythingSlot;
    }
    header.count = uint16_t(n);
    auto *out = static_cast<uint8_t *>(palloc(core::validity_size(n, header.flags)));
    *length = core::encode_validity(header, slots, out);
    pfree(slots);
    return out;
}

uint8_t *explicit_validity(const Oid *relations, int count, size_t *length)
{
    core::ValidityHeader header;
    header.domain = clock_state != nullptr ? clock_state->domain() : 0;
    /* The value was computed by this transaction, perhaps from a snapshot taken long before now. */
    header.fill_clock = clock_at_transaction_start;
    if (count > 0 && !invalidation_active())
        header.flags |= core::kValidityNotTracked;
    if (count > int(core::kMaxValiditySlots))
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("depends_on lists %d relations; the limit is %u", count, core::kMaxValiditySlots)));
    uint32 n = invalidation_active() ? uint32(count) : 0;
    header.count = uint16_t(n);
    if (n > 0 && RecoveryInProgress()) {
        header.flags |= core::kValidityReplay;
        header.replay = replay_at_transaction_start;
    }
    auto *slots = static_cast<uint32 *>(palloc(sizeof(uint32) * (n + 1)));
    for (uint32 i = 0; i < n; i++)
        slots[i] = slot_of(relations[i]);
    auto *out = static_cast<uint8_t *>(palloc(core::validity_size(n, header.flags)));
    *length = core::encode_validity(header, slots, out);
    pfree(slots);
    return out;
}

bool validity_current(const uint8_t *validity, size_t length)
{
    if (clock_state == nullptr) {
        core::ValidityHeader header;
        const uint8_t *slots;
        return core::decode_validity(validity, length, header, slots) && header.count == 0;
    }
    if (!clock_state->is_current(validity, length))
        return false;
    /* Filled on a standby: only until replay moves on (after a promotion it stays where it stopped). */
    if (length > 5 && (validity[4] & core::kValidityReplay)) {
        core::ValidityHeader header;
        const uint8_t *slots;
        return core::decode_validity(validity, length, header, slots) && header.replay == replay_position();
    }
    return true;
}

bool validity_describe(const uint8_t *validity, size_t length, uint64_t *fill_clock, uint16_t *flags,
                       uint32_t *count)
{
    core::ValidityHeader header;
    const uint8_t *slots;
    if (!core::decode_validity(validity, length, header, slots))
        return false;
    *fill_clock = header.fill_clock;
    *flags = header.flags;
    *count = header.count;
    return true;
}

void invalidate_relation_now(Oid relation)
{
    if (clock_state == nullptr)
        return;
    /* Not deferred to commit: the caller asks for the values to go now, whatever its transaction does. */
    uint32 slots[kMaxWrittenSlots];
    int n = 0;
    bool too_many = false;
    for_relation_and_descendants(relation, [&](uint32 slot) {
        if (n < kMaxWrittenSlots)
            slots[n++] = slot;
        else
            too_many = true;
    });
    if (too_many) {
        slots[0] = core::dependency_slot(MyDatabaseId, InvalidOid);
        n = 1;
    }
    clock_state->bump(slots, size_t(n));
    pg_atomic_fetch_add_u64(&shared->invalidations, uint64(n));
}

uint64_t explicit_epoch(uint64_t key_hash)
{
    if (shared == nullptr)
        return 0;
    return pg_atomic_read_u64(&shared->explicit_epoch) +
           pg_atomic_read_u64(&shared->explicit_buckets[key_hash % kEpochBuckets]);
}

void bump_explicit_epoch(const uint64_t *key_hash)
{
    if (shared == nullptr)
        return;
    if (key_hash == nullptr)
        pg_atomic_fetch_add_u64(&shared->explicit_epoch, 1);
    else
        pg_atomic_fetch_add_u64(&shared->explicit_buckets[*key_hash % kEpochBuckets], 1);
}

bool epoch_bump_concerns(const uint64_t *bumped, uint64_t key_hash)
{
    return bumped == nullptr || *bumped % kEpochBuckets == key_hash % kEpochBuckets;
}

uint64_t invalidation_count() { return shared != nullptr ? pg_atomic_read_u64(&shared->invalidations) : 0; }

void invalidation_reset_count()
{
    if (shared != nullptr)
        pg_atomic_write_u64(&shared->invalidations, 0);
}

}  // namespace tusk
