/*
 * ttl.hpp: time-to-live arithmetic, free of PostgreSQL headers.
 *
 * A TTL arrives as PostgreSQL's interval (months, days, microseconds). It is
 * turned into microseconds the way PostgreSQL compares intervals: a month is
 * 30 days and a day is 24 hours. Results saturate instead of overflowing, so
 * '1000000 years' means "as long as can be represented", not a wrap-around.
 */
#pragma once

#include <cstdint>

namespace tusk::core {

constexpr int64_t kMicrosPerDay = INT64_C(86400000000);

enum class TtlStatus { Ok, NotPositive };

/* Converts an interval to microseconds; a TTL must be greater than zero. */
TtlStatus interval_to_ttl(int32_t months, int32_t days, int64_t micros, int64_t &ttl_out);

/* now + ttl, saturating at INT64_MAX. */
int64_t expiry_time(int64_t now, int64_t ttl);

/* Microseconds left before expires_at (0 if already past). */
int64_t remaining_ttl(int64_t expires_at, int64_t now);

}  // namespace tusk::core
