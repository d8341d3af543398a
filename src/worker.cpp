/*
 * worker.cpp: the tusk metrics worker, a background worker started with the
 * server (shared_preload_libraries). Every tusk.metrics_interval it
 *   - turns the metric registry into per-interval rows of
 *     tusk_metrics_history (count, sum, min, max, p50, p95, p99 of that
 *     interval alone, from the difference of two histogram snapshots and
 *     the interval extremes the histograms keep),
 *   - deletes history older than tusk.metrics_retention,
 *   - sweeps expired rows out of tusk_cache_l3,
 *   - evaluates the alert rules (alerts.cpp),
 * in one transaction in tusk.database. Until the extension exists there it
 * waits quietly (one LOG line), keeping its snapshots current.
 *
 * Signals, as pg_cron's launcher handles them: SIGHUP reloads the
 * configuration; SIGTERM (shutdown, pg_terminate_backend) ends the worker
 * through the standard die() handler, and the postmaster starts it again
 * after kRestartSeconds unless the server is shutting down. A crash of any
 * backend restarts it with the server.
 *
 * Memory: the previous snapshot of every histogram is kept in this process
 * (about 20 kB per histogram), in static storage; nothing with a destructor
 * lives on the stack across a call that can raise.
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void tusk_worker_main(Datum);
}

#include <cmath>
#include <memory>
#include <vector>

#include "alerts.hpp"
#include "l3_cache.hpp"
#include "metrics.hpp"
#include "subtransaction.hpp"
#include "worker.hpp"

namespace tusk {

namespace {

constexpr int kRestartSeconds = 5;
/* Expired L3 rows removed per interval at most (the fills sweep too). */
constexpr int64 kSweepPerInterval = 10000;

char *worker_database = nullptr; /* tusk.database */
int metrics_interval_ms = 10000; /* tusk.metrics_interval */
int metrics_retention_s = 7 * 24 * 3600; /* tusk.metrics_retention */

/*
 * The previous interval's state of one slot. A histogram's snapshot (about
 * 20 kB) is allocated only for histogram slots, so the worker's memory grows
 * with the histograms that exist, not with tusk.max_metrics.
 */
struct Previous {
    bool valid = false;
    uint64_t count = 0; /* counters and gauges */
    uint64_t resets = 0;
    double value = 0;
    std::unique_ptr<core::HistogramSnapshot> histogram;
};
std::vector<Previous> previous;
TimestampTz previous_at = 0;
/* The snapshots were lost (out of memory): the next collection takes a baseline. */
bool baseline_next = false;
bool said_waiting = false;

/* One metric's row for the interval just ended. */
struct IntervalRow {
    core::MetricSlot *slot;
    uint64_t count;
    /* NaN (written as NULL) where the kind has no such statistic. */
    double sum, min, max, p50, p95, p99, value;
};
std::vector<IntervalRow> rows;

/*
 * Computes the interval rows from the registry and advances `previous`.
 * Pure C++ over shared memory: calls nothing that can raise. Out of memory
 * (std::bad_alloc) drops this interval's rows and the snapshots.
 */
void collect_interval_unguarded();

void collect_interval() noexcept
{
    try {
        collect_interval_unguarded();
    } catch (...) {
        rows.clear();
        previous.clear();
        baseline_next = true;
        return;
    }
    baseline_next = false;
}

void collect_interval_unguarded()
{
    rows.clear();
    core::MetricRegistry *registry = metric_registry();
    if (registry == nullptr)
        return;
    /*
     * What a slot held before this interval: the last collection's snapshot;
     * nothing for a slot registered since (its values are all new), unless
     * this process has not collected yet and the registry was collected
     * before (a restarted worker): then its values may be older than the
     * interval, and this collection only takes a baseline.
     */
    bool baseline_only = (previous_at == 0 && registry->collected_at() != 0) || baseline_next;
    previous.resize(registry->capacity());
    for (uint32_t i = 0; i < registry->capacity(); i++) {
        core::MetricSlot &slot = registry->slot(i);
        if (slot.state.load(std::memory_order_acquire) != core::MetricSlot::kReady)
            continue;
        Previous &before = previous[i];
        if (!before.valid && !baseline_only) {
            before = Previous{};
            if (slot.kind == core::MetricKind::Histogram)
                before.histogram = std::make_unique<core::HistogramSnapshot>();
            before.valid = true;
        }
        IntervalRow row{&slot, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
        if (slot.kind == core::MetricKind::Histogram) {
            core::HistogramSnapshot now = core::histogram_snapshot(slot.cells);
            double lo, hi;
            core::histogram_take_interval_extremes(slot.cells, lo, hi);
            if (before.valid && before.histogram != nullptr) {
                core::HistogramSnapshot delta = core::difference(now, *before.histogram);
                if (delta.count > 0) {
                    delta.min = lo;
                    delta.max = hi;
                    row.count = delta.count;
                    row.sum = delta.sum;
                    /*
                     * quantile() uses the extremes only where they lie in the lowest
                     * and highest occupied buckets: a value recorded at the very
                     * moment of the take may be counted in one interval and be the
                     * extreme of the next (histogram.hpp).
                     */
                    row.min = core::quantile(delta, 0);
                    row.max = core::quantile(delta, 1);
                    row.p50 = core::quantile(delta, 0.5);
                    row.p95 = core::quantile(delta, 0.95);
                    row.p99 = core::quantile(delta, 0.99);
                    rows.push_back(row);
                }
            }
            before.histogram = std::make_unique<core::HistogramSnapshot>(std::move(now));
            before.valid = true;
            continue;
        }
        uint64_t resets = slot.cells.resets.load(std::memory_order_acquire);
        uint64_t count = slot.cells.count.load(std::memory_order_acquire);
        double value = slot.current_value();
        /* After a reset, the interval is everything since the reset. */
        bool reset = before.valid && (resets != before.resets || count < before.count);
        if (before.valid && (count != before.count || reset) && count > 0) {
            row.count = reset ? count : count - before.count;
            row.value = value;
            row.sum = slot.kind == core::MetricKind::Counter ? (reset ? value : value - before.value) : NAN;
            rows.push_back(row);
        }
        before.count = count;
        before.resets = resets;
        before.value = value;
        before.valid = true;
    }
}

Datum float_or_null(double v, char *null)
{
    *null = std::isfinite(v) ? ' ' : 'n';
    return Float8GetDatum(std::isfinite(v) ? v : 0);
}

/* Writes the collected rows; SPI connected, in a transaction. */
void write_history(const char *schema, TimestampTz start, TimestampTz end)
{
    char *sql = psprintf("INSERT INTO %s.tusk_metrics_history"
                         " (interval_start, interval_end, name, kind, count, sum, min, max, p50, p95, p99, value)"
                         " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                         quote_identifier(schema));
    Oid types[12] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, INT8OID, FLOAT8OID,
                     FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID};
    SPIPlanPtr plan = SPI_prepare(sql, 12, types);
    if (plan == nullptr)
        elog(ERROR, "tusk metrics worker: could not prepare the history insert: %s",
             SPI_result_code_string(SPI_result));
    for (const IntervalRow &row : rows) {
        Datum values[12];
        char nulls[12];
        memset(nulls, ' ', sizeof nulls);
        values[0] = TimestampTzGetDatum(start);
        values[1] = TimestampTzGetDatum(end);
        values[2] = CStringGetTextDatum(row.slot->name);
        values[3] = CStringGetTextDatum(core::metric_kind_name(row.slot->kind));
        values[4] = Int64GetDatum(int64(row.count));
        values[5] = float_or_null(row.sum, &nulls[5]);
        values[6] = float_or_null(row.min, &nulls[6]);
        values[7] = float_or_null(row.max, &nulls[7]);
        values[8] = float_or_null(row.p50, &nulls[8]);
        values[9] = float_or_null(row.p95, &nulls[9]);
        values[10] = float_or_null(row.p99, &nulls[10]);
        values[11] = float_or_null(row.value, &nulls[11]);
        int rc = SPI_execute_plan(plan, values, nulls, false, 0);
        if (rc != SPI_OK_INSERT)
            elog(ERROR, "tusk metrics worker: history insert failed: %s", SPI_result_code_string(rc));
    }
    SPI_freeplan(plan);
}

void trim_history(const char *schema, TimestampTz now)
{
    if (metrics_retention_s <= 0)
        return;
    char *sql = psprintf("DELETE FROM %s.tusk_metrics_history WHERE interval_end < $1", quote_identifier(schema));
    Oid types[1] = {TIMESTAMPTZOID};
    Datum values[1] = {TimestampTzGetDatum(now - int64(metrics_retention_s) * USECS_PER_SEC)};
    int rc = SPI_execute_with_args(sql, 1, types, values, nullptr, false, 0);
    if (rc != SPI_OK_DELETE)
        elog(ERROR, "tusk metrics worker: history trim failed: %s", SPI_result_code_string(rc));
}

/*
 * Runs step() in an internal subtransaction: an error is logged as a
 * WARNING and rolled back, and the transaction goes on. step must hold no
 * C++ object with a destructor (lambdas capturing plain values only).
 */
template <typename Step> void step_in_subtransaction(const char *what, Step step)
{
    bool done = false;
    ErrorData *error = in_subtransaction(nullptr, [&step]() -> bool { step(); return true; }, &done);
    if (error == nullptr)
        return;
    ereport(WARNING, (errmsg("tusk metrics worker: error %s: %s", what, error->message)));
    FreeErrorData(error);
}

/* One interval's work, in its own transaction. Raises on failure (the caller logs it). */
void run_interval(TimestampTz now)
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    /* The worker is a superuser: resolve every name in pg_catalog, never in a user's schema. */
    (void) set_config_option("search_path", "pg_catalog", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                             false);
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "tusk metrics worker: interval");
    collect_interval();
    core::MetricRegistry *registry = metric_registry();
    /* The first interval of a fresh registry starts when the registry was made. */
    if (previous_at == 0 && registry != nullptr && registry->collected_at() == 0)
        previous_at = registry->created_at();
    if (registry != nullptr)
        registry->set_collected_at(now);
    Oid extension = get_extension_oid("tusk", true);
    if (extension == InvalidOid) {
        if (!said_waiting)
            ereport(LOG, (errmsg("tusk metrics worker: extension tusk is not created in database \"%s\"; "
                                 "waiting for it",
                                 worker_database)));
        said_waiting = true;
    } else {
        said_waiting = false;
        /* The extension may be dropped at this very moment: then there is no schema. */
        Oid schema_oid = extension_schema_of(extension);
        char *schema = OidIsValid(schema_oid) ? get_namespace_name(schema_oid) : nullptr;
        if (schema != nullptr) {
            if (SPI_connect() != SPI_OK_CONNECT)
                elog(ERROR, "tusk metrics worker: SPI_connect failed");
            if (previous_at != 0)
                write_history(schema, previous_at, now);
            trim_history(schema, now);
            SPI_finish();
            /* Each in a subtransaction: its failure is logged and the history stays. */
            step_in_subtransaction("sweeping expired L3 rows", [now] { l3_sweep_expired(now, kSweepPerInterval); });
            if (previous_at != 0)
                step_in_subtransaction("judging the alert rules", [schema, now] { evaluate_alerts(schema, now); });
        }
    }
    previous_at = now;
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

/* run_interval, with an error logged and rolled back instead of ending the worker. */
void run_interval_logged(TimestampTz now)
{
    MemoryContext context = CurrentMemoryContext;
    PG_TRY();
    {
        run_interval(now);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
        previous_at = now; /* the next rows start here */
    }
    PG_END_TRY();
}

}  // namespace

void worker_define_gucs()
{
    /* PostgreSQL ends a backend that creates a PGC_POSTMASTER variable outside preloading. */
    if (process_shared_preload_libraries_in_progress)
        DefineCustomStringVariable("tusk.database", "Database the tusk metrics worker connects to.",
                                   "The extension must be created there for history, sweeping and alerts.",
                                   &worker_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.metrics_interval", "How often the metrics worker writes tusk_metrics_history.",
                            nullptr, &metrics_interval_ms, 10000, 100, 24 * 3600 * 1000, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.metrics_retention", "How long tusk_metrics_history keeps rows (0: forever).",
                            nullptr, &metrics_retention_s, 7 * 24 * 3600, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
}

void worker_register()
{
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = kRestartSeconds;
    strlcpy(worker.bgw_library_name, "tusk", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "tusk_worker_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "tusk metrics worker", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "tusk metrics worker", BGW_MAXLEN);
    RegisterBackgroundWorker(&worker);
}

}  // namespace tusk

extern "C" void tusk_worker_main(Datum)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(tusk::worker_database, nullptr, 0);
    ereport(LOG, (errmsg("tusk metrics worker started in database \"%s\"", tusk::worker_database)));

    TimestampTz next_run = GetCurrentTimestamp();
    for (;;) {
        TimestampTz now = GetCurrentTimestamp();
        if (now >= next_run) {
            tusk::run_interval_logged(now);
            next_run = now + int64(tusk::metrics_interval_ms) * 1000;
            now = GetCurrentTimestamp();
        }
        long wait_ms = long((next_run - now + 999) / 1000);
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms > 0 ? wait_ms : 1,
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        /* A cancel (pg_cancel_backend) while idle has nothing to cancel: it must not end the worker. */
        QueryCancelPending = false;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            /* A shorter interval takes effect now, not after the old one ends. */
            TimestampTz sooner = GetCurrentTimestamp() + int64(tusk::metrics_interval_ms) * 1000;
            if (sooner < next_run)
                next_run = sooner;
        }
    }
}
