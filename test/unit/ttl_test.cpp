/* ttl_test.cpp: unit tests for tusk::core TTL arithmetic (no PostgreSQL needed). */
#include <gtest/gtest.h>

#include <cstdint>

#include "core/ttl.hpp"

using namespace tusk::core;

namespace {

constexpr int64_t kHour = INT64_C(3600000000);
constexpr int64_t kDay = kMicrosPerDay;

/* ttl for an interval that must be accepted; fails the test otherwise. */
int64_t ttl_of(int32_t months, int32_t days, int64_t micros)
{
    int64_t ttl = -12345;
    TtlStatus st = interval_to_ttl(months, days, micros, ttl);
    EXPECT_EQ(st, TtlStatus::Ok) << months << " months " << days << " days " << micros << " us";
    return ttl;
}

void expect_not_positive(int32_t months, int32_t days, int64_t micros)
{
    int64_t ttl = -12345;
    EXPECT_EQ(interval_to_ttl(months, days, micros, ttl), TtlStatus::NotPositive)
        << months << " months " << days << " days " << micros << " us";
    EXPECT_EQ(ttl, 0) << "ttl_out is set to 0 on rejection";
}

TEST(IntervalToTtl, PositiveIntervals)
{
    EXPECT_EQ(kDay, INT64_C(86400) * 1000000);
    EXPECT_EQ(ttl_of(0, 0, 1), 1);
    EXPECT_EQ(ttl_of(0, 0, 1500000), 1500000);
    EXPECT_EQ(ttl_of(0, 1, 0), kDay);
    EXPECT_EQ(ttl_of(0, 7, 0), 7 * kDay);
    EXPECT_EQ(ttl_of(0, 2, 3 * kHour), 2 * kDay + 3 * kHour);
    EXPECT_EQ(ttl_of(1, 2, 3), 32 * kDay + 3);
}

TEST(IntervalToTtl, ZeroIsRejected)
{
    expect_not_positive(0, 0, 0);
}

TEST(IntervalToTtl, NegativeIsRejected)
{
    expect_not_positive(0, 0, -1);
    expect_not_positive(0, -1, 0);
    expect_not_positive(-1, 0, 0);
    expect_not_positive(-1, -1, -1);
    expect_not_positive(0, 0, INT64_MIN);
}

TEST(IntervalToTtl, MixedSignsAreSummed)
{
    EXPECT_EQ(ttl_of(0, 1, -kHour), 23 * kHour) << "'1 day -1 hour'";
    EXPECT_EQ(ttl_of(0, -1, 25 * kHour), kHour) << "'-1 day 25 hours'";
    EXPECT_EQ(ttl_of(1, -29, 0), kDay) << "'1 month -29 days'";
    EXPECT_EQ(ttl_of(-1, 31, 0), kDay) << "'-1 month 31 days'";
    EXPECT_EQ(ttl_of(0, 1, 1 - kDay), 1);
    expect_not_positive(0, 1, -kDay);      /* exactly zero */
    expect_not_positive(0, 1, -kDay - 1);  /* one microsecond below zero */
    expect_not_positive(1, -30, 0);        /* a month is exactly 30 days */
    expect_not_positive(1, -31, kDay - 1);
}

TEST(IntervalToTtl, MonthIsThirtyDays)
{
    EXPECT_EQ(ttl_of(1, 0, 0), 30 * kDay);
    EXPECT_EQ(ttl_of(12, 0, 0), 360 * kDay);
    EXPECT_EQ(ttl_of(1, 0, 0), ttl_of(0, 30, 0));
}

TEST(IntervalToTtl, HugeValuesSaturateAtInt64Max)
{
    /* 106751991 days fit in int64 microseconds, 106751992 do not. */
    EXPECT_EQ(ttl_of(0, 106751991, 0), INT64_C(106751991) * kDay);
    EXPECT_EQ(ttl_of(0, 106751992, 0), INT64_MAX);
    EXPECT_EQ(ttl_of(0, 106751991, INT64_MAX - INT64_C(106751991) * kDay), INT64_MAX);
    EXPECT_EQ(ttl_of(0, 106751991, INT64_MAX - INT64_C(106751991) * kDay - 1), INT64_MAX - 1);
    EXPECT_EQ(ttl_of(0, 106751991, INT64_MAX - INT64_C(106751991) * kDay + 1), INT64_MAX);
    EXPECT_EQ(ttl_of(3558399, 21, 0), INT64_C(106751991) * kDay) << "months count as 30 days";
    EXPECT_EQ(ttl_of(3558400, 0, 0), INT64_MAX);
    EXPECT_EQ(ttl_of(0, 0, INT64_MAX), INT64_MAX);
    EXPECT_EQ(ttl_of(0, 1, INT64_MAX), INT64_MAX) << "must not wrap to negative";
    EXPECT_EQ(ttl_of(12 * 1000000, 0, 0), INT64_MAX) << "'1000000 years'";
    EXPECT_EQ(ttl_of(INT32_MAX, INT32_MAX, INT64_MAX), INT64_MAX);
    EXPECT_EQ(ttl_of(0, INT32_MAX, 0), INT64_MAX);
    EXPECT_EQ(ttl_of(INT32_MAX, 0, INT64_MIN), INT64_MAX);
    expect_not_positive(INT32_MIN, INT32_MIN, INT64_MIN);
    expect_not_positive(INT32_MIN, 0, INT64_MAX);
    expect_not_positive(0, INT32_MIN, INT64_MAX);
}

TEST(ExpiryTime, AddsTtlToNow)
{
    EXPECT_EQ(expiry_time(100, 50), 150);
    EXPECT_EQ(expiry_time(0, 1), 1);
    EXPECT_EQ(expiry_time(-1000, 500), -500) << "timestamps before 2000 are negative";
    EXPECT_EQ(expiry_time(INT64_MAX - 10, 9), INT64_MAX - 1);
    EXPECT_EQ(expiry_time(INT64_MAX - 10, 10), INT64_MAX);
}

TEST(ExpiryTime, SaturatesAtInt64Max)
{
    EXPECT_EQ(expiry_time(INT64_MAX - 10, 11), INT64_MAX);
    EXPECT_EQ(expiry_time(INT64_MAX, 1), INT64_MAX);
    EXPECT_EQ(expiry_time(INT64_MAX, INT64_MAX), INT64_MAX);
    EXPECT_EQ(expiry_time(1, INT64_MAX), INT64_MAX);
    /* A realistic "now" (2024 in PostgreSQL's epoch) with the longest TTL. */
    const int64_t now = INT64_C(757382400000000);
    EXPECT_EQ(expiry_time(now, INT64_MAX), INT64_MAX);
    EXPECT_EQ(expiry_time(now, ttl_of(12 * 1000000, 0, 0)), INT64_MAX);
}

TEST(RemainingTtl, IsNeverNegative)
{
    EXPECT_EQ(remaining_ttl(200, 100), 100);
    EXPECT_EQ(remaining_ttl(101, 100), 1);
    EXPECT_EQ(remaining_ttl(100, 100), 0);
    EXPECT_EQ(remaining_ttl(100, 200), 0);
    EXPECT_EQ(remaining_ttl(-100, -300), 200);
    EXPECT_EQ(remaining_ttl(-300, -100), 0);
    EXPECT_EQ(remaining_ttl(INT64_MIN, INT64_MAX), 0) << "must not wrap to positive";
    EXPECT_EQ(remaining_ttl(INT64_MAX, 0), INT64_MAX);
    EXPECT_EQ(remaining_ttl(INT64_MAX, INT64_MIN), INT64_MAX) << "saturates";
    EXPECT_EQ(remaining_ttl(INT64_MAX, -1), INT64_MAX);
}

TEST(Ttl, RoundTripThroughExpiryAndRemaining)
{
    const int64_t now = INT64_C(757382400000000);
    int64_t ttl = ttl_of(0, 1, -kHour);
    int64_t expires = expiry_time(now, ttl);
    EXPECT_EQ(remaining_ttl(expires, now), ttl);
    EXPECT_EQ(remaining_ttl(expires, now + kHour), ttl - kHour);
    EXPECT_EQ(remaining_ttl(expires, expires), 0);
}

}  // namespace
