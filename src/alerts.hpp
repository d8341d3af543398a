/*
 * alerts.hpp: evaluation of the alert rules (table tusk_alert_rules) by the
 * metrics worker, once per interval (src/alerts.cpp).
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/timestamp.h"
}

namespace tusk {

/*
 * Judges every rule against the interval that ended at `interval_end`
 * (its rows in tusk_metrics_history, or the live value), records each
 * rule's state, and for each rule whose state changed sends NOTIFY
 * tusk_alerts with a JSON payload and logs one line. In the caller's
 * transaction; SPI not connected; raises on failure.
 */
void evaluate_alerts(const char *schema, TimestampTz interval_end);

}  // namespace tusk
