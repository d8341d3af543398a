/*
 * alerts.cpp: the metrics worker's evaluation of tusk_alert_rules.
 *
 * A rule compares one statistic of one metric with a threshold. The
 * statistic is that of the interval that just ended (the rows the worker
 * wrote into tusk_metrics_history for it: count, sum, min, max, mean, p50,
 * p95, p99; an interval without a row has count and sum 0 and no other
 * statistic), or, for 'value', the counter's total or the gauge's last value
 * now. A rule with no observation is not firing. One statement judges every
 * rule, stores state, observation and times, and sends NOTIFY tusk_alerts
 * with a JSON payload for each rule whose state changed; each change is
 * also logged once. Runs in the worker's interval transaction, with
 * search_path pinned to pg_catalog (the worker is a superuser).
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
}

#include "alerts.hpp"

namespace tusk {

namespace {

/* %1$s is the extension's quoted schema. */
constexpr const char *kEvaluate =
    "WITH judged AS ("
    " SELECT r.name, r.metric, r.statistic, r.comparison, r.threshold, r.state AS old_state,"
    "  CASE r.statistic"
    "   WHEN 'count' THEN COALESCE(h.count, 0)::float8"
    "   WHEN 'sum' THEN COALESCE(h.sum, 0)"
    "   WHEN 'min' THEN h.min WHEN 'max' THEN h.max"
    "   WHEN 'mean' THEN h.sum / NULLIF(h.count, 0)::float8"
    "   WHEN 'p50' THEN h.p50 WHEN 'p95' THEN h.p95 WHEN 'p99' THEN h.p99"
    "   WHEN 'value' THEN m.value"
    "  END AS observed"
    " FROM %1$s.tusk_alert_rules r"
    " LEFT JOIN %1$s.tusk_metrics_history h ON h.name = r.metric AND h.interval_end = $1"
    " LEFT JOIN %1$s.tusk_metrics m ON m.name = r.metric"
    "), verdict AS ("
    " SELECT j.*, COALESCE(CASE j.comparison"
    "   WHEN '>' THEN j.observed > j.threshold WHEN '>=' THEN j.observed >= j.threshold"
    "   WHEN '<' THEN j.observed < j.threshold WHEN '<=' THEN j.observed <= j.threshold END, false) AS firing"
    " FROM judged j"
    "), updated AS ("
    " UPDATE %1$s.tusk_alert_rules r"
    " SET state = CASE WHEN v.firing THEN 'firing' ELSE 'ok' END, observed = v.observed, evaluated_at = $1,"
    "  changed_at = CASE WHEN (v.old_state = 'firing') IS DISTINCT FROM v.firing THEN $1 ELSE r.changed_at END"
    " FROM verdict v WHERE r.name = v.name"
    " RETURNING r.name, r.state, v.old_state, r.metric, r.statistic, r.comparison, r.threshold, v.observed"
    ")"
    " SELECT u.name, u.state, u.metric, u.statistic, u.comparison, u.threshold::text, u.observed::text,"
    "  pg_notify('tusk_alerts', json_build_object('alert', u.name, 'state', u.state, 'metric', u.metric,"
    "   'statistic', u.statistic, 'comparison', u.comparison, 'threshold', u.threshold,"
    "   'observed', u.observed, 'at', $1)::text)"
    " FROM updated u WHERE u.state IS DISTINCT FROM u.old_state";

}  // namespace

void evaluate_alerts(const char *schema, TimestampTz interval_end)
{
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "tusk metrics worker: SPI_connect failed");
    char *sql = psprintf(kEvaluate, quote_identifier(schema));
    Oid types[1] = {TIMESTAMPTZOID};
    Datum values[1] = {TimestampTzGetDatum(interval_end)};
    int rc = SPI_execute_with_args(sql, 1, types, values, nullptr, false, 0);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "tusk metrics worker: alert evaluation failed: %s", SPI_result_code_string(rc));
    for (uint64 i = 0; i < SPI_processed; i++) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        char *name = SPI_getvalue(tuple, desc, 1);
        char *state = SPI_getvalue(tuple, desc, 2);
        char *observed = SPI_getvalue(tuple, desc, 7);
        ereport(LOG, (errmsg("tusk alert \"%s\" is %s: %s of %s is %s, threshold %s %s", name, state,
                             SPI_getvalue(tuple, desc, 4), SPI_getvalue(tuple, desc, 3),
                             observed != nullptr ? observed : "unknown", SPI_getvalue(tuple, desc, 5),
                             SPI_getvalue(tuple, desc, 6))));
    }
    SPI_finish();
}

}  // namespace tusk
