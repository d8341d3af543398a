/*
 * l3_queue.cpp: the L3 write-behind queue and its writers (see l3_queue.hpp).
 *
 * Shared state (QueueShared, "tusk l3 queue"): kLanes lanes, each a ring of
 * tusk.l3_queue_size / kLanes bytes holding the queued fills of one
 * database, with its head (next byte the writer takes), tail (next byte a
 * filler writes), written (the head of the last batch the writer
 * committed), and its writer's state.
 * Locking rules:
 *   - One LWLock ("tusk_l3_queue") guards every lane field and ring byte.
 *     Fillers hold it exclusively while they copy one record in, the writer
 *     while it copies a batch out; never across a query, a wait or an
 *     error (copies use memory allocated before the lock is taken).
 *   - A lane belongs to one database from its first queued fill until its
 *     writer exits with the ring empty.
 *   - writer_running is set by the filler that registers the writer and
 *     cleared by the writer, both under the lock, after checking the ring
 *     is empty: a record is never left behind without a writer to come.
 *   - The dropped counter is the l3 errors counter (l3_cache.cpp).
 * The writer is a dynamic background worker ("tusk L3 writer") connected to
 * the lane's database; it writes batches with l3_put_batch in its own
 * transactions, as the table's owner, and exits after kIdleExitSeconds
 * without work, or when told to stop (SIGTERM: a shutdown, which waits for
 * it), once the queue is empty. Plain C-style code.
 */
#include "l3_queue.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_database.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PGDLLEXPORT void tusk_l3_writer_main(Datum);
}

#include <algorithm>
#include <cstring>

#include "core/cache_key.hpp"
#include "invalidation.hpp"
#include "l3_cache.hpp"

namespace tusk {

namespace {

constexpr int kLanes = 4; /* each a background worker slot while its database fills */
constexpr int kIdleExitSeconds = 2; /* DROP DATABASE waits 5 s for the backends of a database */
constexpr int kBatchRecords = 1000;
constexpr uint64 kBatchBytes = 8 * 1024 * 1024;
constexpr uint64 kMaxRecordBytes = 64 * 1024 * 1024;
/* A writer registered this long ago that never showed up is taken for lost. */
constexpr int kWriterStartSeconds = 10;
/* A lane without a writer and without a new fill for this long may be taken by another database. */
constexpr int kAbandonedLaneSeconds = 60;
/* On a shutdown, the longest a writer goes on writing what is queued. */
constexpr int kShutdownDrainMs = 2000;
constexpr const char *kTranche = "tusk_l3_queue";

int queue_size_kb = 8 * 1024; /* tusk.l3_queue_size */

struct Lane {
    Oid database;
    bool writer_running;  /* registered (maybe not started yet) or running */
    Latch *writer_latch;  /* set by the writer once it runs */
    TimestampTz writer_registered_at;
    TimestampTz last_put_at;
    uint64 head;
    uint64 tail;
    uint64 written;
};

struct QueueShared {
    LWLock *lock;
    uint64 lane_bytes;
    Lane lanes[kLanes];
    /* the rings follow, lane_bytes each */
};

/* A record: the header, then the key, the validity record and the value, each at a MAXALIGN'd offset. */
struct RecordHeader {
    uint32 total; /* rounded up to MAXALIGN */
    uint32 key_length;
    uint32 validity_length;
    uint32 value_length;
    core::Fingerprint fingerprint;
    int64 expires_at;
    uint64 epoch;
};

QueueShared *queue = nullptr;

char *ring_of(int lane) { return reinterpret_cast<char *>(queue + 1) + uint64(lane) * queue->lane_bytes; }

void ring_write(int lane, uint64 at, const void *data, size_t length)
{
    uint64 offset = at % queue->lane_bytes;
    size_t first = std::min<size_t>(length, queue->lane_bytes - offset);
    memcpy(ring_of(lane) + offset, data, first);
    if (first < length)
        memcpy(ring_of(lane), static_cast<const char *>(data) + first, length - first);
}

void ring_read(int lane, uint64 at, void *data, size_t length)
{
    uint64 offset = at % queue->lane_bytes;
    size_t first = std::min<size_t>(length, queue->lane_bytes - offset);
    memcpy(data, ring_of(lane) + offset, first);
    if (first < length)
        memcpy(static_cast<char *>(data) + first, ring_of(lane), length - first);
}

Size shmem_bytes()
{
    return queue_size_kb <= 0 ? 0 : MAXALIGN(sizeof(QueueShared)) + Size(queue_size_kb) * 1024;
}

/*
 * The lane of this database, claiming a free one, or one that another
 * database abandoned (no writer, no fill for a minute: its rows are
 * dropped); -1 when there is none. Lock held.
 */
int lane_for(Oid database, TimestampTz now)
{
    int free_lane = -1;
    for (int i = 0; i < kLanes; i++) {
        const Lane &lane = queue->lanes[i];
        if (lane.database == database)
            return i;
        bool abandoned = lane.database != InvalidOid && !lane.writer_running &&
                         TimestampDifferenceExceeds(lane.last_put_at, now, kAbandonedLaneSeconds * 1000);
        if ((lane.database == InvalidOid || abandoned) && free_lane < 0)
            free_lane = i;
    }
    if (free_lane >= 0) {
        Lane &lane = queue->lanes[free_lane];
        lane = Lane{database, false, nullptr, 0, now, 0, 0, 0};
    }
    return free_lane;
}

/* The owner of the current database (InvalidOid if it cannot be read: the writer then connects as the superuser). */
Oid database_owner()
{
    HeapTuple tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
    if (!HeapTupleIsValid(tuple))
        return InvalidOid;
    Oid owner = reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple))->datdba;
    ReleaseSysCache(tuple);
    return owner;
}

/* A writer registered long ago that never set its latch did not start (fork failure, no slot). Lock held. */
void forget_lost_writer(Lane &lane, TimestampTz now)
{
    if (lane.writer_running && lane.writer_latch == nullptr &&
        TimestampDifferenceExceeds(lane.writer_registered_at, now, kWriterStartSeconds * 1000))
        lane.writer_running = false;
}

/* The worker connects as the database's owner, so that the owner's DROP DATABASE ... WITH (FORCE) may end it. */
bool start_writer(int lane, Oid database, Oid owner)
{
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(worker.bgw_library_name, "tusk", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "tusk_l3_writer_main", BGW_MAXLEN);
    snprintf(worker.bgw_name, BGW_MAXLEN, "tusk L3 writer for database %u", database);
    strlcpy(worker.bgw_type, "tusk L3 writer", BGW_MAXLEN);
    worker.bgw_main_arg = Int32GetDatum(lane);
    memcpy(worker.bgw_extra, &database, sizeof database);
    memcpy(worker.bgw_extra + sizeof database, &owner, sizeof owner);
    worker.bgw_notify_pid = 0;
    return RegisterDynamicBackgroundWorker(&worker, nullptr);
}

/* The writer process's lane (-1 elsewhere), and whether it got into its database. */
int my_lane = -1;
bool connected = false;

/* The lane's writer is gone (lock held): the lane is free once nothing is left in it (drop_rows: nothing is). */
void writer_gone(Lane &lane, bool drop_rows)
{
    lane.writer_running = false;
    lane.writer_latch = nullptr;
    if (drop_rows)
        lane.head = lane.tail;
    if (lane.head == lane.tail) {
        lane.written = lane.tail;
        lane.database = InvalidOid;
    }
}

void writer_exit(int, Datum)
{
    if (queue == nullptr || my_lane < 0)
        return;
    /*
     * A writer that could not even connect (the database was dropped, or
     * does not accept connections) drops the lane's rows, so that no lane
     * stays taken by a database that will never drain it.
     */
    LWLockAcquire(queue->lock, LW_EXCLUSIVE);
    writer_gone(queue->lanes[my_lane], !connected);
    LWLockRelease(queue->lock);
}

/* Copies up to kBatchRecords records out of the lane into rows (palloc'd); how many. Advances head to *end. */
int take_batch(L3Row *rows, uint64 *end)
{
    /* Sizes first, under the lock; the copies are allocated before the lock is taken again. */
    LWLockAcquire(queue->lock, LW_SHARED);
    Lane &lane = queue->lanes[my_lane];
    uint64 head = lane.head, tail = lane.tail;
    LWLockRelease(queue->lock);
    if (head == tail)
        return 0;
    /* Only this process advances head: the records in [head, tail) stay put until it does. */
    int n = 0;
    uint64 at = head;
    while (at < tail && n < kBatchRecords && at - head < kBatchBytes) {
        RecordHeader h;
        ring_read(my_lane, at, &h, sizeof h);
        char *copy = static_cast<char *>(palloc(h.total));
        ring_read(my_lane, at, copy, h.total);
        char *p = copy + MAXALIGN(sizeof h);
        rows[n].key = EncodedKey{reinterpret_cast<uint8_t *>(p), h.key_length, 0};
        p += MAXALIGN(h.key_length);
        rows[n].validity = reinterpret_cast<uint8_t *>(p);
        rows[n].validity_length = h.validity_length;
        p += MAXALIGN(h.validity_length);
        rows[n].value = reinterpret_cast<struct varlena *>(p);
        rows[n].fingerprint = h.fingerprint;
        rows[n].expires_at = h.expires_at;
        rows[n].key.hash = core::key_hash(rows[n].key.bytes, rows[n].key.length);
        rows[n].epoch = h.epoch;
        n++;
        at += h.total;
    }
    LWLockAcquire(queue->lock, LW_EXCLUSIVE);
    lane.head = at;
    LWLockRelease(queue->lock);
    *end = at;
    return n;
}

/* Writes one batch in its own transaction; an error is logged and the batch dropped. */
void write_batch()
{
    MemoryContext batch = AllocSetContextCreate(TopMemoryContext, "tusk L3 writer batch", ALLOCSET_DEFAULT_SIZES);
    MemoryContext previous = MemoryContextSwitchTo(batch);
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, "tusk L3 writer: writing queued fills");
        auto *rows = static_cast<L3Row *>(palloc(sizeof(L3Row) * kBatchRecords));
        uint64 end = 0;
        int n = take_batch(rows, &end);
        if (n > 0) {
            int64 now = GetCurrentTimestamp();
            /*
             * Kept: the newest record of each key (a statement cannot write a
             * key twice), unexpired, and begun after the last delete,
             * invalidate or flush (it may be what that removed).
             */
            /* The newest of each key first (an older one must not stand in for it), then the filters. */
            int newest = 0;
            for (int i = n - 1; i >= 0; i--) {
                bool newer_seen = false;
                for (int j = 0; j < newest && !newer_seen; j++)
                    newer_seen = rows[j].key.length == rows[i].key.length &&
                                 memcmp(rows[j].key.bytes, rows[i].key.bytes, rows[i].key.length) == 0;
                if (!newer_seen)
                    rows[newest++] = rows[i];
            }
            int kept = 0;
            for (int i = 0; i < newest; i++)
                if (rows[i].epoch == explicit_epoch(rows[i].key.hash) && rows[i].expires_at > now)
                    rows[kept++] = rows[i];
            /* One bad row must not cost the others theirs: a failed batch is retried row by row. */
            if (kept > 0 && l3_put_batch(rows, kept, nullptr, 0, now) == L3BatchResult::Failed && kept > 1)
                for (int i = 0; i < kept; i++)
                    l3_put_batch(&rows[i], 1, nullptr, 0, now);
        }
        PopActiveSnapshot();
        CommitTransactionCommand();
        if (n > 0) {
            LWLockAcquire(queue->lock, LW_EXCLUSIVE);
            queue->lanes[my_lane].written = end;
            LWLockRelease(queue->lock);
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(batch);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
    }
    PG_END_TRY();
    pgstat_report_activity(STATE_IDLE, nullptr);
    MemoryContextSwitchTo(previous);
    MemoryContextDelete(batch);
}

/* Whether the lane has work; if not and the writer may stop, it lets go of the lane. Lock taken here. */
bool has_work(bool may_stop)
{
    LWLockAcquire(queue->lock, LW_EXCLUSIVE);
    Lane &lane = queue->lanes[my_lane];
    bool work = lane.head != lane.tail;
    if (!work) {
        lane.written = lane.tail;
        if (may_stop)
            writer_gone(lane, false);
    }
    LWLockRelease(queue->lock);
    return work;
}

}  // namespace

void l3_queue_define_gucs()
{
    if (process_shared_preload_libraries_in_progress)
        DefineCustomIntVariable("tusk.l3_queue_size",
                                "Shared memory for L3 rows that reading transactions' fills queue for the L3 writers.",
                                "0: every transaction writes its own fills' L3 rows when it commits.",
                                &queue_size_kb, 8 * 1024, 0, INT_MAX / 2, PGC_POSTMASTER, GUC_UNIT_KB, nullptr,
                                nullptr, nullptr);
}

void l3_queue_request_shmem()
{
    Size bytes = shmem_bytes();
    if (bytes == 0)
        return;
    RequestAddinShmemSpace(bytes);
    RequestNamedLWLockTranche(kTranche, 1);
}

void l3_queue_startup_shmem()
{
    Size bytes = shmem_bytes();
    if (bytes == 0)
        return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    queue = static_cast<QueueShared *>(ShmemInitStruct("tusk l3 queue", bytes, &found));
    if (!found) {
        queue->lock = &(GetNamedLWLockTranche(kTranche))->lock;
        queue->lane_bytes = (bytes - MAXALIGN(sizeof(QueueShared))) / kLanes / 8 * 8;
        for (Lane &lane : queue->lanes)
            lane = Lane{InvalidOid, false, nullptr, 0, 0, 0, 0, 0};
    }
    LWLockRelease(AddinShmemInitLock);
}

bool l3_queue_put(const EncodedKey &key, const core::Fingerprint &fingerprint, const struct varlena *value,
                  const uint8_t *validity, size_t validity_length, int64 expires_at, uint64 epoch)
{
    if (queue == nullptr)
        return false;
    size_t value_length = VARSIZE_ANY(value);
    size_t key_at = MAXALIGN(sizeof(RecordHeader));
    size_t validity_at = key_at + MAXALIGN(key.length);
    size_t value_at = validity_at + MAXALIGN(validity_length);
    size_t total = MAXALIGN(value_at + value_length);
    if (total > queue->lane_bytes / 4 || total > kMaxRecordBytes)
        return false;
    /* The record, made before the lock is taken. */
    char *record = static_cast<char *>(palloc0(total));
    RecordHeader h{uint32(total), key.length, uint32(validity_length), uint32(value_length), fingerprint,
                   expires_at, epoch};
    memcpy(record, &h, sizeof h);
    memcpy(record + key_at, key.bytes, key.length);
    memcpy(record + validity_at, validity, validity_length);
    memcpy(record + value_at, value, value_length);
    Oid owner = database_owner();

    bool queued = false, full = false, start = false;
    int lane_index = -1;
    Latch *latch = nullptr;
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(queue->lock, LW_EXCLUSIVE);
    lane_index = lane_for(MyDatabaseId, now);
    if (lane_index >= 0) {
        Lane &lane = queue->lanes[lane_index];
        forget_lost_writer(lane, now);
        lane.last_put_at = now;
        if (lane.tail - lane.head + total > queue->lane_bytes) {
            full = true;
        } else {
            ring_write(lane_index, lane.tail, record, total);
            lane.tail += total;
            queued = true;
            if (!lane.writer_running) {
                lane.writer_running = true; /* this backend starts it, below */
                lane.writer_registered_at = now;
                start = true;
            }
            latch = lane.writer_latch;
        }
    }
    LWLockRelease(queue->lock);
    pfree(record);
    if (full) {
        l3_count_dropped();
        return true;
    }
    if (!queued)
        return false; /* every lane is another database's */
    if (start && !start_writer(lane_index, MyDatabaseId, owner)) {
        /* No worker slot: the queued rows wait for the next fill to try again. */
        LWLockAcquire(queue->lock, LW_EXCLUSIVE);
        queue->lanes[lane_index].writer_running = false;
        LWLockRelease(queue->lock);
        static TimestampTz last_report = 0;
        TimestampTz now = GetCurrentTimestamp();
        if (TimestampDifferenceExceeds(last_report, now, 60 * 1000)) {
            last_report = now;
            ereport(LOG, (errmsg("tusk: could not start an L3 writer (max_worker_processes is reached); "
                                 "queued L3 rows wait")));
        }
    } else if (latch != nullptr) {
        SetLatch(latch);
    }
    return true;
}

bool l3_queue_wait(int64 timeout_ms)
{
    if (queue == nullptr)
        return true;
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    LWLockAcquire(queue->lock, LW_SHARED);
    int lane_index = -1;
    for (int i = 0; i < kLanes; i++)
        if (queue->lanes[i].database == MyDatabaseId)
            lane_index = i;
    uint64 target = lane_index >= 0 ? queue->lanes[lane_index].tail : 0;
    LWLockRelease(queue->lock);
    if (lane_index < 0)
        return true;
    for (;;) {
        LWLockAcquire(queue->lock, LW_SHARED);
        Lane &lane = queue->lanes[lane_index];
        bool done = lane.database != MyDatabaseId || lane.written >= target;
        bool writer = lane.writer_running &&
                      !(lane.writer_latch == nullptr &&
                        TimestampDifferenceExceeds(lane.writer_registered_at, GetCurrentTimestamp(),
                                                   kWriterStartSeconds * 1000));
        LWLockRelease(queue->lock);
        if (done)
            return true;
        long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (left <= 0)
            return false;
        /* No writer (none could start): nobody will write these until the next fill. */
        if (!writer)
            return false;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, std::min<long>(left, 10),
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

}  // namespace tusk

extern "C" void tusk_l3_writer_main(Datum arg)
{
    using namespace tusk;
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    /* A shutdown (or pg_terminate_backend) writes what is queued first: the server waits for it. */
    pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
    BackgroundWorkerUnblockSignals();
    Oid database, owner;
    memcpy(&database, MyBgworkerEntry->bgw_extra, sizeof database);
    memcpy(&owner, MyBgworkerEntry->bgw_extra + sizeof database, sizeof owner);
    my_lane = DatumGetInt32(arg);
    before_shmem_exit(writer_exit, 0);
    if (queue == nullptr || my_lane < 0 || my_lane >= kLanes)
        proc_exit(0);
    /* As the database's owner (a DROP DATABASE ... WITH (FORCE) of the owner's may end it), even when it takes no connections. */
    BackgroundWorkerInitializeConnectionByOid(database, owner, BGWORKER_BYPASS_ALLOWCONN);
    connected = true;
    /* Cache rows: their commits need no flush; the writer's own transactions read committed data. */
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
    LWLockAcquire(queue->lock, LW_EXCLUSIVE);
    queue->lanes[my_lane].writer_latch = MyLatch;
    LWLockRelease(queue->lock);

    TimestampTz idle_since = GetCurrentTimestamp();
    TimestampTz shutdown_at = 0;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ShutdownRequestPending && shutdown_at == 0)
            shutdown_at = GetCurrentTimestamp();
        /* A cache may forget: past the drain time, what is left is dropped with the lane. */
        if (shutdown_at != 0 && TimestampDifferenceExceeds(shutdown_at, GetCurrentTimestamp(), kShutdownDrainMs)) {
            LWLockAcquire(queue->lock, LW_EXCLUSIVE);
            Lane &lane = queue->lanes[my_lane];
            lane.head = lane.written = lane.tail;
            LWLockRelease(queue->lock);
        }
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        TimestampTz now = GetCurrentTimestamp();
        bool may_stop = ShutdownRequestPending || TimestampDifferenceExceeds(idle_since, now, kIdleExitSeconds * 1000);
        if (has_work(may_stop)) {
            write_batch();
            idle_since = GetCurrentTimestamp();
            continue;
        }
        if (may_stop)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    my_lane = -1; /* has_work() let go of the lane */
    proc_exit(0);
}
