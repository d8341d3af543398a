/*
 * metric_functions.cpp: the SQL entry points of the metrics: recording
 * (tusk_metric_record, _increment, _gauge), reading (the tusk_metrics view,
 * tusk_histogram, tusk_metrics_prometheus) and tusk_metrics_reset.
 *
 * Bodies run inside sql_entry() (see guard.hpp) and hold no C++ objects
 * with destructors (snapshots are taken in helper frames that call no
 * PostgreSQL function that can raise), so they call PostgreSQL directly.
 * Metric names are read in place from the text argument: recording copies
 * nothing and allocates nothing.
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tusk_metric_record);
PG_FUNCTION_INFO_V1(tusk_metric_increment);
PG_FUNCTION_INFO_V1(tusk_metric_gauge);
PG_FUNCTION_INFO_V1(tusk_metrics_reset);
PG_FUNCTION_INFO_V1(tusk_histogram);
PG_FUNCTION_INFO_V1(tusk_metrics_list);
PG_FUNCTION_INFO_V1(tusk_metrics_prometheus);
}

#include <cmath>

#include "core/histogram.hpp"
#include "guard.hpp"
#include "sql_args.hpp"
#include "metrics.hpp"

namespace tusk {

namespace {

/* Quantiles shown by the view and exported to Prometheus. */
constexpr double kQuantiles[] = {0.5, 0.95, 0.99};

core::MetricSlot *slot_arg(FunctionCallInfo fcinfo, core::MetricKind kind)
{
    require_arg(fcinfo, 0, "metric name");
    text *name = PG_GETARG_TEXT_PP(0);
    return metric_slot_for(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), kind);
}

double finite_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
    require_arg(fcinfo, n, what);
    double value = PG_GETARG_FLOAT8(n);
    if (!std::isfinite(value))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must be a finite number", what)));
    return value;
}

Datum metric_record(FunctionCallInfo fcinfo)
{
    core::MetricSlot *slot = slot_arg(fcinfo, core::MetricKind::Histogram);
    require_arg(fcinfo, 1, "value");
    double value = PG_GETARG_FLOAT8(1);
    core::RecordResult result = core::histogram_record(slot->cells, value, metrics_timestamp());
    if (result != core::RecordResult::Recorded)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("cannot record %s in histogram \"%s\"",
                               std::isnan(value) ? "NaN" : psprintf("%g", value), slot->name),
                        errdetail("%s; a histogram records 0 and values from %g to %g.",
                                  core::record_result_message(result), core::kMinValue, core::kMaxValue)));
    PG_RETURN_VOID();
}

Datum metric_increment(FunctionCallInfo fcinfo)
{
    core::MetricSlot *slot = slot_arg(fcinfo, core::MetricKind::Counter);
    double delta = finite_arg(fcinfo, 1, "delta");
    if (delta < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("a counter only grows: delta must be >= 0, not %g", delta),
                        errhint("Use tusk_metric_gauge() for a value that goes up and down.")));
    core::metric_add(*slot, delta, metrics_timestamp());
    PG_RETURN_VOID();
}

Datum metric_gauge(FunctionCallInfo fcinfo)
{
    core::MetricSlot *slot = slot_arg(fcinfo, core::MetricKind::Gauge);
    double value = finite_arg(fcinfo, 1, "value");
    core::metric_set(*slot, value, metrics_timestamp());
    PG_RETURN_VOID();
}

Datum metrics_reset(FunctionCallInfo fcinfo)
{
    core::MetricRegistry *registry = metric_registry();
    if (registry == nullptr)
        PG_RETURN_INT64(0);
    if (!PG_ARGISNULL(0)) {
        text *name = PG_GETARG_TEXT_PP(0);
        core::metric_reset(*existing_metric_slot(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)));
        PG_RETURN_INT64(1);
    }
    int64 reset = 0;
    for (uint32_t i = 0; i < registry->capacity(); i++) {
        core::MetricSlot &slot = registry->slot(i);
        if (slot.state.load(std::memory_order_acquire) == core::MetricSlot::kReady) {
            core::metric_reset(slot);
            reset++;
        }
    }
    PG_RETURN_INT64(reset);
}

/*
 * The statistics of one slot as plain values (no C++ object outlives this
 * frame, which calls nothing that can raise).
 */
struct SlotSummary {
    uint64_t count;
    double sum, min, max, mean, value;
    double quantiles[3];
    int64_t updated_at;
};

void summarize(core::MetricSlot &slot, SlotSummary &out)
{
    out.value = slot.current_value();
    if (slot.kind != core::MetricKind::Histogram) {
        out.count = slot.cells.count.load(std::memory_order_relaxed);
        out.updated_at = slot.cells.updated_at.load(std::memory_order_relaxed);
        return;
    }
    core::HistogramSnapshot snapshot = core::histogram_snapshot(slot.cells);
    out.count = snapshot.count;
    out.sum = snapshot.sum;
    out.min = snapshot.min;
    out.max = snapshot.max;
    out.mean = core::snapshot_mean(snapshot);
    for (size_t q = 0; q < 3; q++)
        out.quantiles[q] = core::quantile(snapshot, kQuantiles[q]);
    out.updated_at = snapshot.updated_at;
}

Datum metrics_list(FunctionCallInfo fcinfo)
{
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    core::MetricRegistry *registry = metric_registry();
    if (registry == nullptr)
        return (Datum) 0;
    for (uint32_t i = 0; i < registry->capacity(); i++) {
        core::MetricSlot &slot = registry->slot(i);
        if (slot.state.load(std::memory_order_acquire) != core::MetricSlot::kReady)
            continue;
        SlotSummary s{};
        summarize(slot, s);
        /* name, kind, count, sum, min, max, mean, p50, p95, p99, value, updated_at */
        Datum values[12];
        bool nulls[12] = {false};
        values[0] = CStringGetTextDatum(slot.name);
        values[1] = CStringGetTextDatum(core::metric_kind_name(slot.kind));
        values[2] = Int64GetDatum(int64(s.count));
        if (slot.kind == core::MetricKind::Histogram) {
            bool empty = s.count == 0;
            values[3] = Float8GetDatum(s.sum);
            values[4] = Float8GetDatum(s.min);
            values[5] = Float8GetDatum(s.max);
            values[6] = Float8GetDatum(s.mean);
            for (int q = 0; q < 3; q++)
                values[7 + q] = Float8GetDatum(s.quantiles[q]);
            for (int c = 4; c <= 9; c++)
                nulls[c] = empty;
            nulls[10] = true;
        } else {
            /* A counter's sum is its total; a gauge has only its last value. */
            values[3] = Float8GetDatum(s.value);
            nulls[3] = slot.kind == core::MetricKind::Gauge;
            for (int c = 4; c <= 9; c++)
                nulls[c] = true;
            values[10] = Float8GetDatum(s.value);
        }
        values[11] = TimestampTzGetDatum(s.updated_at);
        nulls[11] = s.updated_at == 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}

/* Per non-empty bucket of one histogram: its bounds and count. */
struct BucketRows {
    int n;
    double *lower, *upper;
    int64 *count;
};

void bucket_rows(core::MetricSlot &slot, BucketRows &rows)
{
    core::HistogramSnapshot snapshot = core::histogram_snapshot(slot.cells);
    rows.n = 0;
    if (snapshot.zero_count > 0) {
        rows.lower[rows.n] = rows.upper[rows.n] = 0;
        rows.count[rows.n++] = int64(snapshot.zero_count);
    }
    for (int i = 0; i < core::kBuckets; i++) {
        if (snapshot.buckets[i] == 0)
            continue;
        rows.lower[rows.n] = core::bucket_lower(i);
        rows.upper[rows.n] = core::bucket_upper(i);
        rows.count[rows.n++] = int64(snapshot.buckets[i]);
    }
}

Datum histogram(FunctionCallInfo fcinfo)
{
    require_arg(fcinfo, 0, "metric name");
    text *name = PG_GETARG_TEXT_PP(0);
    core::MetricSlot *slot = existing_metric_slot(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
    if (slot->kind != core::MetricKind::Histogram)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("metric \"%s\" is a %s, not a histogram", slot->name,
                               core::metric_kind_name(slot->kind))));
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    BucketRows rows;
    rows.lower = static_cast<double *>(palloc(sizeof(double) * (core::kBuckets + 1)));
    rows.upper = static_cast<double *>(palloc(sizeof(double) * (core::kBuckets + 1)));
    rows.count = static_cast<int64 *>(palloc(sizeof(int64) * (core::kBuckets + 1)));
    bucket_rows(*slot, rows);
    for (int i = 0; i < rows.n; i++) {
        Datum values[3] = {Float8GetDatum(rows.lower[i]), Float8GetDatum(rows.upper[i]),
                           Int64GetDatum(rows.count[i])};
        bool nulls[3] = {false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}

/* The histogram whose summary has a sample named `name` (h_sum, h_count), or nullptr. */
const char *summary_sample_of(core::MetricRegistry *registry, const char *name)
{
    size_t length = strlen(name);
    for (const char *suffix : {"_sum", "_count"}) {
        size_t n = strlen(suffix);
        if (length <= n || strcmp(name + length - n, suffix) != 0)
            continue;
        core::MetricSlot *base = registry->find(std::string_view(name, length - n));
        if (base != nullptr && base->kind == core::MetricKind::Histogram)
            return base->name;
    }
    return nullptr;
}

/* A sample value as the Prometheus text format spells it. */
void append_sample_value(StringInfo out, double v)
{
    if (std::isnan(v))
        appendStringInfoString(out, "NaN");
    else if (std::isinf(v))
        appendStringInfoString(out, v > 0 ? "+Inf" : "-Inf");
    else
        appendStringInfo(out, "%.17g", v);
}

Datum metrics_prometheus(FunctionCallInfo)
{
    StringInfoData out;
    initStringInfo(&out);
    core::MetricRegistry *registry = metric_registry();
    for (uint32_t i = 0; registry != nullptr && i < registry->capacity(); i++) {
        core::MetricSlot &slot = registry->slot(i);
        if (slot.state.load(std::memory_order_acquire) != core::MetricSlot::kReady)
            continue;
        SlotSummary s{};
        summarize(slot, s);
        const char *name = slot.name;
        /*
         * A histogram h is exported as the samples h, h_sum and h_count: a metric
         * named h_sum or h_count would be a second family of the same name, and
         * Prometheus refuses the whole page. Such a metric is left out.
         */
        if (const char *of = summary_sample_of(registry, name)) {
            appendStringInfo(&out, "# tusk: %s %s is not exported: histogram %s exports a sample of that name\n",
                             core::metric_kind_name(slot.kind), name, of);
            continue;
        }
        switch (slot.kind) {
            case core::MetricKind::Counter: {
                /* Prometheus counters end in _total; "x" is exported as x_total unless that name is taken. */
                size_t length = strlen(name);
                bool has_suffix = length >= 6 && strcmp(name + length - 6, "_total") == 0;
                if (!has_suffix && registry->find(std::string_view(psprintf("%s_total", name)))) {
                    appendStringInfo(&out, "# tusk: counter %s is not exported: %s_total is another metric\n",
                                     name, name);
                    break;
                }
                const char *exported = has_suffix ? name : psprintf("%s_total", name);
                appendStringInfo(&out, "# HELP %s tusk counter %s\n# TYPE %s counter\n%s ", exported, name,
                                 exported, exported);
                append_sample_value(&out, s.value);
                appendStringInfoChar(&out, '\n');
                break;
            }
            case core::MetricKind::Gauge:
                appendStringInfo(&out, "# HELP %s tusk gauge %s\n# TYPE %s gauge\n%s ", name, name, name, name);
                append_sample_value(&out, s.value);
                appendStringInfoChar(&out, '\n');
                break;
            case core::MetricKind::Histogram:
                appendStringInfo(&out, "# HELP %s tusk histogram %s, as recorded (built-in timings in ms)\n"
                                       "# TYPE %s summary\n",
                                 name, name, name);
                for (int q = 0; q < 3; q++) {
                    appendStringInfo(&out, "%s{quantile=\"%g\"} ", name, kQuantiles[q]);
                    append_sample_value(&out, s.count > 0 ? s.quantiles[q] : NAN);
                    appendStringInfoChar(&out, '\n');
                }
                appendStringInfo(&out, "%s_sum ", name);
                append_sample_value(&out, s.count > 0 ? s.sum : 0);
                appendStringInfo(&out, "\n%s_count %llu\n", name, (unsigned long long) s.count);
                break;
        }
    }
    PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

}  // namespace

}  // namespace tusk

extern "C" {

Datum tusk_metric_record(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metric_record(fcinfo); });
}

Datum tusk_metric_increment(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metric_increment(fcinfo); });
}

Datum tusk_metric_gauge(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metric_gauge(fcinfo); });
}

Datum tusk_metrics_reset(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metrics_reset(fcinfo); });
}

Datum tusk_histogram(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::histogram(fcinfo); });
}

Datum tusk_metrics_list(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metrics_list(fcinfo); });
}

Datum tusk_metrics_prometheus(PG_FUNCTION_ARGS)
{
    return tusk::sql_entry([fcinfo] { return tusk::metrics_prometheus(fcinfo); });
}

}
