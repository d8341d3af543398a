/*
 * benchmark.cpp: tusk_benchmark, the seed's BenchmarkRunner as an SQL
 * function, and its GUC tusk.benchmark_progress_interval.
 *
 *   tusk_benchmark(name text, sql text, iterations integer DEFAULT 1000,
 *                  warmup integer DEFAULT 100)
 *     RETURNS (name, iterations, mean, min, max, p50, p95, p99, stddev)
 *
 * What it does:
 *   - `sql` is exactly one statement of any kind SPI can run (SELECT, DML,
 *     utility), run through SPI in the caller's transaction with the
 *     caller's privileges and settings. Transaction control and COPY to or
 *     from the client are refused before anything runs.
 *   - The statement is parsed and analysed once (SPI_prepare_cursor, with
 *     parallel plans allowed, as PL/pgSQL allows them), planned once, at its
 *     first run (a generic plan: it has no parameters), and that plan is
 *     executed every time, as `pgbench -M prepared` does. The plan is not
 *     kept (SPI_keepplan), so PostgreSQL's invalidations do not reach it:
 *     an index created or a table analysed during a run is not seen until
 *     the next call (locks keep it from running on a dropped or altered
 *     relation). With warmup
 *     0, the first timed run therefore includes the planning. Each
 *     execution takes a new snapshot and command id (SPI's non-read-only
 *     mode), so every run sees the writes of the runs before it, like
 *     consecutive statements of a session.
 *   - Rows are produced in full and discarded (None_Receiver): a run costs
 *     what executing the statement costs, without the output conversion or
 *     the network transfer a client would add, and without keeping rows.
 *   - `warmup` untimed runs, then `iterations` runs each timed with the
 *     monotonic clock (metrics_clock_ns) around the SPI call alone.
 *   - Statistics are exact, over the collected samples, in milliseconds:
 *     mean, min, max; p50/p95/p99 by nearest rank exactly as percentile_disc
 *     computes them (the rank-th smallest sample, rank = max(1, ceil(q * n)));
 *     stddev is the sample standard deviation (n - 1 in the denominator, as
 *     PostgreSQL's stddev() and stddev_samp()), 0 for a single iteration.
 *   - Recording is all or nothing: only a benchmark that completes records
 *     its timed runs into the histogram `name` (one observation per run), so
 *     the histogram describes complete benchmarks only. A run that fails
 *     (the statement's own error propagates unchanged, with the run number in
 *     its context), a cancel or a statement_timeout records nothing. The
 *     name is checked (and the histogram registered if new) after the
 *     statement has been prepared and before it first runs, so a failing
 *     statement can leave an empty histogram behind, as tusk_trace_start can.
 *     Histograms are not transactional: a completed benchmark stays recorded
 *     when the caller's transaction rolls back.
 *   - Progress: when tusk.benchmark_progress_interval (ms, 0 = off) has
 *     passed since the start or the last message, a NOTICE names the run
 *     reached ('tusk_benchmark "x": warmup 10 of 100', 'tusk_benchmark "x":
 *     250 of 1000 iterations'); the timings so far are in its DETAIL, so the
 *     message itself is deterministic.
 *   - Cancel and statement_timeout: CHECK_FOR_INTERRUPTS before every run.
 *
 * Memory: the samples are one palloc'd array of doubles in the caller's
 * memory context (8 bytes per iteration, 8 MB at the most). Each execution's
 * allocations live in SPI's executor context, which SPI resets after every
 * call, and no rows are kept: beyond the samples, a run of a million
 * iterations uses no more memory than a run of ten.
 *
 * Sharing: this file shares no memory between processes except through the
 * metric registry (histogram_record into the slot of `name`), whose rules
 * are in metrics.cpp and metric_registry.hpp. Everything else is
 * backend-local and lives for one call.
 *
 * Boundary (guard.hpp): the body runs inside sql_entry() and every frame
 * here is plain C-style code (palloc, no C++ object with a destructor), so
 * PostgreSQL errors, including the benchmarked statement's, may longjmp
 * through it. std::sort runs on a plain double array and calls nothing that
 * can raise.
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(tusk_benchmark);
}

#include <algorithm>
#include <cmath>

#include "benchmark.hpp"
#include "core/histogram.hpp"
#include "core/metric_registry.hpp"
#include "guard.hpp"
#include "sql_args.hpp"
#include "metrics.hpp"

namespace tusk {

namespace {

constexpr int kMaxIterations = 1000000;
constexpr int kMaxWarmup = 1000000;
constexpr int kResultColumns = 9;

int progress_interval_ms = 10000; /* tusk.benchmark_progress_interval */

/* One benchmark in progress. Plain data: errors may longjmp past it. */
struct Run {
    SPIPlanPtr plan;
    const char *name;   /* the histogram slot's name: NUL-terminated, never moves */
    int64_t started_ns; /* start of the first run (warmup included) */
    int64_t progress_ns; /* tusk.benchmark_progress_interval in ns; 0 = no messages */
    int64_t reported_ns; /* started_ns, or when the last progress message went out */
    bool timed;          /* the phase: warmup or timed */
    int current;         /* 1-based run of the phase, for the error context */
    int total;           /* runs in the phase */
    /* Timed runs so far, for progress messages. */
    double sum, min, max;
};

/*
 * Syntax errors of the raw parse point into `sql`, not into the caller's
 * query: report their position as an internal query position, as SPI does.
 */
void parse_error_context(void *arg)
{
    const char *sql = static_cast<const char *>(arg);
    int position = geterrposition();
    if (position > 0) {
        errposition(0);
        internalerrposition(position);
        internalerrquery(sql);
    } else {
        errcontext("SQL statement \"%s\"", sql);
    }
}

/* Checks that `sql` is one statement tusk_benchmark can run; raises otherwise. */
void check_statement(const char *sql)
{
    ErrorContextCallback callback{error_context_stack, parse_error_context, const_cast<char *>(sql)};
    error_context_stack = &callback;
    List *statements = raw_parser(sql, RAW_PARSE_DEFAULT);
    error_context_stack = callback.previous;

    if (list_length(statements) != 1)
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                        errmsg("tusk_benchmark takes exactly one SQL statement, got %d", list_length(statements)),
                        list_length(statements) == 0 ? errdetail("The text is empty or only comments.") : 0));
    Node *statement = linitial_node(RawStmt, statements)->stmt;
    if (IsA(statement, TransactionStmt))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("tusk_benchmark cannot run transaction control statements"),
                        errdetail("The statement runs inside the caller's transaction.")));
    if (IsA(statement, CopyStmt) && castNode(CopyStmt, statement)->filename == nullptr)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("tusk_benchmark cannot run COPY to or from the client"),
                        errhint("Benchmark COPY with a file or a program, or time INSERT ... SELECT instead.")));
}

void run_error_context(void *arg)
{
    const Run *run = static_cast<const Run *>(arg);
    errcontext("tusk_benchmark \"%s\", %s %d of %d", run->name, run->timed ? "timed run" : "warmup run",
               run->current, run->total);
}

void report_progress(const Run &run, int done, int64_t now_ns)
{
    double elapsed_s = double(now_ns - run.started_ns) / 1e9;
    if (!run.timed)
        ereport(NOTICE, (errmsg("tusk_benchmark \"%s\": warmup %d of %d", run.name, done, run.total),
                         errdetail("Warmup runs are not timed; %.1f s elapsed.", elapsed_s)));
    else
        ereport(NOTICE, (errmsg("tusk_benchmark \"%s\": %d of %d iterations", run.name, done, run.total),
                         errdetail("Timed runs so far: mean %.4g ms, min %.4g ms, max %.4g ms; %.1f s elapsed.",
                                   run.sum / done, run.min, run.max, elapsed_s)));
}

/*
 * One phase: `total` executions of the plan. With `samples`, each run's
 * duration in milliseconds goes to samples[i] (the timed phase).
 */
void run_phase(Run &run, int total, double *samples)
{
    run.timed = samples != nullptr;
    run.total = total;
    run.current = 0;

    SPIExecuteOptions options{};
    options.read_only = false; /* a new snapshot and command id per run */
    options.dest = None_Receiver;

    ErrorContextCallback callback{error_context_stack, run_error_context, &run};
    error_context_stack = &callback;
    for (int i = 0; i < total; i++) {
        CHECK_FOR_INTERRUPTS();
        run.current = i + 1;
        int64_t start = metrics_clock_ns();
        int rc = SPI_execute_plan_extended(run.plan, &options);
        int64_t end = metrics_clock_ns();
        if (rc < 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("tusk_benchmark could not run the statement: %s", SPI_result_code_string(rc))));
        if (samples != nullptr) {
            double ms = double(end - start) / 1e6;
            samples[i] = ms;
            run.sum += ms;
            run.min = std::min(run.min, ms);
            run.max = std::max(run.max, ms);
        }
        if (run.progress_ns > 0 && end - run.reported_ns >= run.progress_ns) {
            /* Not a failure of run i: no run context on the message. */
            error_context_stack = callback.previous;
            report_progress(run, i + 1, end);
            error_context_stack = &callback;
            run.reported_ns = end;
        }
    }
    error_context_stack = callback.previous;
}

/* The rank-th smallest of n sorted samples, rank = max(1, ceil(q * n)) as percentile_disc. */
double nearest_rank(const double *sorted, int n, double q)
{
    double rank = std::ceil(q * double(n));
    if (rank < 1)
        return sorted[0];
    if (rank >= n)
        return sorted[n - 1];
    return sorted[int(rank) - 1];
}

struct Summary {
    double mean, min, max, p50, p95, p99, stddev;
};

/* Exact statistics of n >= 1 samples; sorts them in place. Calls no PostgreSQL function. */
void summarize(double *samples, int n, Summary &out)
{
    std::sort(samples, samples + n);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += samples[i];
    out.min = samples[0];
    out.max = samples[n - 1];
    /* Rounding could put sum / n a hair outside [min, max] (n equal samples); the true mean is inside. */
    out.mean = std::clamp(sum / n, out.min, out.max);
    out.p50 = nearest_rank(samples, n, 0.5);
    out.p95 = nearest_rank(samples, n, 0.95);
    out.p99 = nearest_rank(samples, n, 0.99);
    /* Sample standard deviation, two passes (no cancellation of large squares). */
    double squares = 0;
    for (int i = 0; i < n; i++)
        squares += (samples[i] - out.mean) * (samples[i] - out.mean);
    out.stddev = n > 1 ? std::sqrt(squares / (n - 1)) : 0.0;
}

Datum benchmark(FunctionCallInfo fcinfo)
{
    require_arg(fcinfo, 0, "name");
    require_arg(fcinfo, 1, "sql");
    require_arg(fcinfo, 2, "iterations");
    require_arg(fcinfo, 3, "warmup");
    text *name = PG_GETARG_TEXT_PP(0);
    int iterations = PG_GETARG_INT32(2);
    int warmup = PG_GETARG_INT32(3);
    if (iterations < 1 || iterations > kMaxIterations)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("iterations must be between 1 and %d, not %d", kMaxIterations, iterations),
                        iterations < 1 ? errhint("Statistics need at least one timed run.")
                                       : errhint("To time more runs, call tusk_benchmark again with the same "
                                                 "name: its histogram adds up the runs of every call.")));
    if (warmup < 0 || warmup > kMaxWarmup)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("warmup must be between 0 and %d, not %d", kMaxWarmup, warmup),
                        warmup < 0 ? errhint("Pass 0 to time every run, without a warmup.")
                                   : errhint("Warmup runs only warm the caches before the timed runs; "
                                             "a few hundred are plenty.")));
    TupleDesc result_desc;
    if (get_call_result_type(fcinfo, nullptr, &result_desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("function returning record called in context that cannot accept type record")));
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
    check_statement(sql);

    /* In the caller's memory context, which outlives the SPI connection. */
    double *samples = static_cast<double *>(palloc(sizeof(double) * size_t(iterations)));

    if (SPI_connect() != SPI_OK_CONNECT)
        ereport(ERROR, (errmsg("tusk: SPI_connect failed")));
    /* Analysis errors (unknown table, no such parameter, ...) come from here. */
    SPIPlanPtr plan = SPI_prepare_cursor(sql, 0, nullptr, CURSOR_OPT_PARALLEL_OK);
    if (plan == nullptr)
        ereport(ERROR, (errmsg("tusk: could not prepare the statement: %s", SPI_result_code_string(SPI_result))));

    /* Invalid, built-in, or another kind's name: an error before anything runs. */
    core::MetricSlot *slot =
        metric_slot_for(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), core::MetricKind::Histogram);

    Run run{};
    run.plan = plan;
    run.name = slot->name;
    run.started_ns = metrics_clock_ns();
    run.reported_ns = run.started_ns;
    run.progress_ns = int64_t(progress_interval_ms) * 1000000;
    run.sum = 0;
    run.min = INFINITY;
    run.max = -INFINITY;
    run_phase(run, warmup, nullptr);
    run_phase(run, iterations, samples);
    SPI_finish();

    /* Complete: record every timed run (finite and >= 0, so none is rejected). */
    int64_t now = metrics_timestamp();
    for (int i = 0; i < iterations; i++)
        core::histogram_record(slot->cells, samples[i], now);

    Summary s;
    summarize(samples, iterations, s);
    pfree(samples);

    Datum values[kResultColumns] = {
        CStringGetTextDatum(slot->name), Int32GetDatum(iterations), Float8GetDatum(s.mean),
        Float8GetDatum(s.min),           Float8GetDatum(s.max),     Float8GetDatum(s.p50),
        Float8GetDatum(s.p95),           Float8GetDatum(s.p99),     Float8GetDatum(s.stddev)};
    bool nulls[kResultColumns] = {false};
    HeapTuple tuple = heap_form_tuple(BlessTupleDesc(result_desc), values, nulls);
    return HeapTupleGetDatum(tuple);
}

}  // namespace

void benchmark_define_gucs()
{
    DefineCustomIntVariable("tusk.benchmark_progress_interval",
                            "How often a long tusk_benchmark reports its progress (0: never).",
                            "A NOTICE names the run reached; the timings so far are in its DETAIL.",
                            &progress_interval_ms, 10000, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
}

}  // namespace tusk

extern "C" {

Datum tusk_benchmark(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::benchmark(fcinfo); });
}

}
