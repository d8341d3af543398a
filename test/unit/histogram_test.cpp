/* Unit tests of the lock-free log-bucket histogram (src/core/histogram.hpp). */
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/histogram.hpp"

using namespace tusk::core;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kAllowedError = kRelativeAccuracy + 1e-12;
constexpr size_t kSamples = 200000;

/* HistogramCells is 20 KB: keep it off the stack, initialized as in shared memory. */
std::unique_ptr<HistogramCells> new_cells()
{
    auto cells = std::make_unique<HistogramCells>();
    histogram_init(*cells);
    return cells;
}

double relative_error(double estimate, double exact)
{
    if (exact == 0)
        return estimate == 0 ? 0.0 : kInf;
    return std::fabs(estimate - exact) / exact;
}

/* Nearest rank of the fraction numerator/denominator, in integers (no rounding doubt). */
size_t exact_rank(size_t n, size_t numerator, size_t denominator)
{
    size_t rank = (numerator * n + denominator - 1) / denominator;
    return std::max<size_t>(1, rank);
}

/*
 * Nearest rank as PostgreSQL's percentile_disc computes it for a float8 q:
 * ceil(q * n) in double. For q = k/1000.0 that can be one more than the
 * integer rank (0.034 * 50000 rounds up to 1700.0000000000002), and the
 * histogram must agree with percentile_disc, not with the integer fraction.
 */
size_t percentile_disc_rank(size_t n, double q)
{
    return std::max<size_t>(1, size_t(std::ceil(q * double(n))));
}

struct Fraction {
    size_t numerator;
    size_t denominator;
    const char *name;
};

const Fraction kNamedQuantiles[] = {
    {0, 1, "min"},     {1, 100, "p1"},     {1, 2, "p50"},        {9, 10, "p90"},
    {19, 20, "p95"},   {99, 100, "p99"},   {999, 1000, "p99.9"}, {1, 1, "max"},
};

double g_worst_error_seen = 0;

/*
 * Compares every quantile k/1000 (k = 0..1000, which includes all named ones)
 * of the recorded values with the exact nearest-rank value of the sorted data.
 * Returns the largest relative error seen.
 */
double check_quantiles(const HistogramSnapshot &snapshot, std::vector<double> values,
                       const std::string &label)
{
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    double worst = 0;
    for (size_t k = 0; k <= 1000; k++) {
        double q = double(k) / 1000.0;
        double exact = values[percentile_disc_rank(n, q) - 1];
        double estimate = quantile(snapshot, q);
        double error = relative_error(estimate, exact);
        EXPECT_LE(error, kAllowedError) << label << " q=" << q << " exact=" << exact
                                        << " estimate=" << estimate;
        worst = std::max(worst, error);
    }
    g_worst_error_seen = std::max(g_worst_error_seen, worst);
    std::printf("[   info   ] %-20s max relative error %.6f over 1001 quantiles (worst so far %.6f)\n",
                label.c_str(), worst, g_worst_error_seen);
    for (const Fraction &f : kNamedQuantiles) {
        double q = double(f.numerator) / double(f.denominator);
        size_t rank = exact_rank(n, f.numerator, f.denominator);
        EXPECT_EQ(percentile_disc_rank(n, q), rank) << "p95 of n values is value ceil(0.95 n)";
        double exact = values[rank - 1];
        EXPECT_LE(relative_error(quantile(snapshot, q), exact), kAllowedError)
            << label << " " << f.name;
    }
    return worst;
}

/* Records `values` into fresh cells and checks everything a snapshot reports. */
void check_distribution(const std::vector<double> &values, const std::string &label)
{
    auto cells = new_cells();
    long double exact_sum = 0;
    size_t zeros = 0;
    for (double v : values) {
        ASSERT_EQ(histogram_record(*cells, v, 1), RecordResult::Recorded) << label << " " << v;
        exact_sum += v;
        zeros += v == 0;
    }
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    ASSERT_EQ(snapshot.count, values.size());
    EXPECT_EQ(cells->count.load(), values.size());
    EXPECT_EQ(snapshot.zero_count, zeros);

    auto [lowest, highest] = std::minmax_element(values.begin(), values.end());
    EXPECT_EQ(snapshot.min, *lowest) << label;
    EXPECT_EQ(snapshot.max, *highest) << label;
    EXPECT_EQ(quantile(snapshot, 0.0), *lowest) << label << ": p0 is exact";
    EXPECT_EQ(quantile(snapshot, 1.0), *highest) << label << ": p100 is exact";
    EXPECT_NEAR(snapshot.sum, double(exact_sum), 1e-9 * double(exact_sum)) << label;
    EXPECT_NEAR(snapshot_mean(snapshot), double(exact_sum) / double(values.size()),
                1e-9 * double(exact_sum) / double(values.size()));

    check_quantiles(snapshot, values, label);
}

template <typename Distribution>
std::vector<double> draw(Distribution distribution, uint64_t seed, size_t n = kSamples)
{
    std::mt19937_64 generator(seed);
    std::vector<double> values(n);
    for (double &v : values)
        v = distribution(generator);
    return values;
}

}  // namespace

/* ---- accuracy against exact nearest-rank percentiles ---- */

TEST(HistogramAccuracy, Lognormal)
{
    check_distribution(draw(std::lognormal_distribution<double>(0.0, 1.5), 42), "lognormal");
}

TEST(HistogramAccuracy, Uniform)
{
    check_distribution(draw(std::uniform_real_distribution<double>(0.5, 1000.0), 7), "uniform");
}

TEST(HistogramAccuracy, Exponential)
{
    check_distribution(draw(std::exponential_distribution<double>(0.1), 11), "exponential");
}

TEST(HistogramAccuracy, BimodalMixture)
{
    /* 90% fast cache hits around 0.05 ms, 10% slow queries around 200 ms. */
    std::mt19937_64 generator(5);
    std::normal_distribution<double> fast(0.05, 0.005);
    std::lognormal_distribution<double> slow(std::log(200.0), 0.3);
    std::bernoulli_distribution is_slow(0.1);
    std::vector<double> values(kSamples);
    for (double &v : values)
        v = is_slow(generator) ? slow(generator) : std::fabs(fast(generator));
    check_distribution(values, "bimodal");
}

TEST(HistogramAccuracy, SpansFifteenDecades)
{
    std::mt19937_64 generator(99);
    std::uniform_real_distribution<double> exponent(-6.0, 9.0);
    std::vector<double> values(kSamples);
    for (double &v : values)
        v = std::pow(10.0, exponent(generator));
    check_distribution(values, "1e-6..1e9");
}

TEST(HistogramAccuracy, ConstantValuesAreExact)
{
    std::vector<double> values(kSamples, 42.0);
    check_distribution(values, "constant");
    auto cells = new_cells();
    for (double v : values)
        histogram_record(*cells, v, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    for (double q : {0.0, 0.5, 0.99, 1.0})
        EXPECT_EQ(quantile(snapshot, q), 42.0) << "clamped into [min, max] = [42, 42]";
}

TEST(HistogramAccuracy, ManyZeros)
{
    std::mt19937_64 generator(3);
    std::bernoulli_distribution is_zero(0.6);
    std::exponential_distribution<double> positive(2.0);
    std::vector<double> values(kSamples);
    for (double &v : values)
        v = is_zero(generator) ? 0.0 : positive(generator);
    check_distribution(values, "many zeros");

    auto cells = new_cells();
    for (double v : values)
        histogram_record(*cells, v, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(quantile(snapshot, 0.0), 0.0);
    EXPECT_EQ(quantile(snapshot, 0.5), 0.0) << "the median of 60% zeros is exactly 0";
    EXPECT_GT(quantile(snapshot, 0.7), 0.0);
}

TEST(HistogramAccuracy, AllZeros)
{
    auto cells = new_cells();
    for (int i = 0; i < 1000; i++)
        histogram_record(*cells, 0.0, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.count, 1000u);
    EXPECT_EQ(snapshot.zero_count, 1000u);
    EXPECT_EQ(quantile(snapshot, 0.0), 0.0);
    EXPECT_EQ(quantile(snapshot, 1.0), 0.0);
    EXPECT_EQ(snapshot_mean(snapshot), 0.0);
}

TEST(HistogramAccuracy, NearestRankIsPercentileDisc)
{
    /* 10, 20, ..., 100: far enough apart that each estimate names its sample. */
    auto cells = new_cells();
    for (int v = 100; v >= 10; v -= 10)
        histogram_record(*cells, v, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    HistogramSnapshot unclamped = snapshot;
    unclamped.min = unclamped.max = std::nan("");
    struct Case {
        double q;
        double sample;
    };
    /* percentile_disc(q): the first value whose position >= q * 10. */
    const Case cases[] = {{0.0, 10}, {0.05, 10}, {0.1, 10},  {0.1001, 20}, {0.5, 50},
                          {0.55, 60}, {0.9, 90}, {0.95, 100}, {1.0, 100}};
    for (const Case &c : cases) {
        EXPECT_LE(relative_error(quantile(snapshot, c.q), c.sample), kAllowedError) << c.q;
        EXPECT_LE(relative_error(quantile(unclamped, c.q), c.sample), kAllowedError) << c.q;
    }
    EXPECT_EQ(quantile(snapshot, 0.0), 10.0);
    EXPECT_EQ(quantile(snapshot, 1.0), 100.0);
}

/* ---- bucket layout ---- */

TEST(HistogramBuckets, LayoutCoversTheRange)
{
    EXPECT_EQ(kBuckets, 2546);
    EXPECT_EQ(sizeof(HistogramCells), 8u * (9 + kBuckets));
    EXPECT_DOUBLE_EQ(kGamma, 1.0095 / 0.9905);
    EXPECT_LT(bucket_lower(0), kMinValue);
    EXPECT_LE(kMinValue, bucket_upper(0));
    EXPECT_LT(bucket_lower(kBuckets - 1), kMaxValue);
    EXPECT_LE(kMaxValue, bucket_upper(kBuckets - 1));
    EXPECT_EQ(bucket_index(kMinValue), 0);
    EXPECT_EQ(bucket_index(kMaxValue), kBuckets - 1);
}

TEST(HistogramBuckets, BoundsArePowersOfGamma)
{
    for (int i = 0; i < kBuckets; i++) {
        double upper = bucket_upper(i);
        double lower = bucket_lower(i);
        double exact_upper = std::pow(kGamma, i + kMinExponent);
        ASSERT_NEAR(upper, exact_upper, 1e-13 * exact_upper) << i;
        ASSERT_NEAR(upper / lower, kGamma, 1e-13) << i;
        if (i > 0) {
            ASSERT_EQ(lower, bucket_upper(i - 1)) << "buckets tile the range";
        }
        /* The reported value is within alpha of both ends of its bucket. */
        double value = bucket_value(i);
        ASSERT_LE((value - lower) / lower, kAllowedError) << i;
        ASSERT_LE((upper - value) / upper, kAllowedError) << i;
        ASSERT_NEAR((value - lower) / lower, kRelativeAccuracy, 1e-12) << "the error is balanced";
    }
}

TEST(HistogramBuckets, IndexIsExactAtEveryBoundary)
{
    for (int i = 0; i < kBuckets; i++) {
        double upper = bucket_upper(i);
        ASSERT_EQ(bucket_index(upper), i) << "upper bounds are inclusive";
        ASSERT_EQ(bucket_index(std::nextafter(bucket_lower(i), kInf)), i)
            << "lower bounds are exclusive";
        if (i + 1 < kBuckets) {
            ASSERT_EQ(bucket_index(std::nextafter(upper, kInf)), i + 1);
        }
        /* gamma^k computed independently lands next to bound k, within alpha. */
        double power = std::pow(kGamma, i + kMinExponent);
        if (power >= kMinValue && power <= kMaxValue) {
            int index = bucket_index(power);
            ASSERT_TRUE(index == i || index == i + 1) << i;
            ASSERT_LE(relative_error(bucket_value(index), power), kAllowedError) << i;
        }
    }
}

TEST(HistogramBuckets, IndexAgreesWithBoundsAcrossTheRange)
{
    std::mt19937_64 generator(1234);
    std::uniform_real_distribution<double> exponent(-9.0, 12.0);
    for (int n = 0; n < 300000; n++) {
        double v = std::pow(10.0, exponent(generator));
        int i = bucket_index(v);
        ASSERT_GE(i, 0);
        ASSERT_LT(i, kBuckets);
        ASSERT_LT(bucket_lower(i), v) << v;
        ASSERT_LE(v, bucket_upper(i)) << v;
        ASSERT_LE(relative_error(bucket_value(i), v), kAllowedError) << v;
    }
}

TEST(HistogramBuckets, RangeEndsAreRecordedJustOutsideRejected)
{
    auto cells = new_cells();
    EXPECT_EQ(histogram_record(*cells, kMinValue, 1), RecordResult::Recorded);
    EXPECT_EQ(histogram_record(*cells, kMaxValue, 2), RecordResult::Recorded);
    EXPECT_EQ(histogram_record(*cells, std::nextafter(kMinValue, 0.0), 3), RecordResult::TooSmall);
    EXPECT_EQ(histogram_record(*cells, std::nextafter(kMaxValue, kInf), 4), RecordResult::TooLarge);
    EXPECT_EQ(histogram_record(*cells, std::numeric_limits<double>::denorm_min(), 5),
              RecordResult::TooSmall);
    EXPECT_EQ(histogram_record(*cells, std::numeric_limits<double>::max(), 6), RecordResult::TooLarge);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.count, 2u);
    EXPECT_EQ(snapshot.buckets[0], 1u);
    EXPECT_EQ(snapshot.buckets[kBuckets - 1], 1u);
    EXPECT_EQ(snapshot.min, kMinValue);
    EXPECT_EQ(snapshot.max, kMaxValue);
    EXPECT_EQ(snapshot.updated_at, 2) << "rejected values do not touch updated_at";
    EXPECT_EQ(quantile(snapshot, 0.0), kMinValue);
    EXPECT_EQ(quantile(snapshot, 1.0), kMaxValue);
    snapshot.min = snapshot.max = std::nan("");
    EXPECT_LE(relative_error(quantile(snapshot, 0.0), kMinValue), kAllowedError);
    EXPECT_LE(relative_error(quantile(snapshot, 1.0), kMaxValue), kAllowedError);
}

/* ---- rejected input ---- */

TEST(HistogramRecord, RejectsBadValuesAndRecordsNothing)
{
    auto cells = new_cells();
    struct Case {
        double value;
        RecordResult expected;
    };
    const Case cases[] = {
        {std::nan(""), RecordResult::NotANumber},
        {-std::nan(""), RecordResult::NotANumber},
        {kInf, RecordResult::Infinite},
        {-kInf, RecordResult::Infinite},
        {-1.0, RecordResult::Negative},
        {-1e-300, RecordResult::Negative},
        {-std::numeric_limits<double>::denorm_min(), RecordResult::Negative},
        {1e-10, RecordResult::TooSmall},
        {1e13, RecordResult::TooLarge},
    };
    for (const Case &c : cases)
        EXPECT_EQ(histogram_record(*cells, c.value, 77), c.expected) << c.value;

    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.count, 0u);
    EXPECT_EQ(cells->count.load(), 0u);
    EXPECT_EQ(snapshot.zero_count, 0u);
    EXPECT_EQ(snapshot.sum, 0.0);
    EXPECT_EQ(snapshot.min, kInf);
    EXPECT_EQ(snapshot.max, -kInf);
    EXPECT_EQ(snapshot.updated_at, 0);
    for (uint64_t bucket : snapshot.buckets)
        ASSERT_EQ(bucket, 0u);
    double interval_min, interval_max;
    histogram_take_interval_extremes(*cells, interval_min, interval_max);
    EXPECT_EQ(interval_min, kInf);
    EXPECT_EQ(interval_max, -kInf);
}

TEST(HistogramRecord, ReasonsHaveMessages)
{
    const RecordResult results[] = {RecordResult::Recorded,  RecordResult::Negative,
                                    RecordResult::NotANumber, RecordResult::Infinite,
                                    RecordResult::TooSmall,  RecordResult::TooLarge};
    std::vector<std::string> messages;
    for (RecordResult r : results) {
        ASSERT_NE(record_result_message(r), nullptr);
        messages.emplace_back(record_result_message(r));
    }
    std::sort(messages.begin(), messages.end());
    EXPECT_EQ(std::unique(messages.begin(), messages.end()), messages.end());
}

TEST(HistogramRecord, NegativeZeroIsZero)
{
    auto cells = new_cells();
    EXPECT_EQ(histogram_record(*cells, -0.0, 1), RecordResult::Recorded);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.zero_count, 1u);
    EXPECT_FALSE(std::signbit(snapshot.min)) << "min must not print as -0";
    EXPECT_FALSE(std::signbit(snapshot.max));
    EXPECT_FALSE(std::signbit(quantile(snapshot, 0.5)));
}

TEST(HistogramRecord, UpdatedAtOnlyMovesForward)
{
    auto cells = new_cells();
    histogram_record(*cells, 1.0, 100);
    histogram_record(*cells, 1.0, 50);
    EXPECT_EQ(histogram_snapshot(*cells).updated_at, 100);
    histogram_record(*cells, 1.0, 150);
    EXPECT_EQ(histogram_snapshot(*cells).updated_at, 150);
}

/* ---- snapshots, merge, difference ---- */

TEST(HistogramSnapshots, EmptyGivesNaN)
{
    HistogramSnapshot blank;
    auto cells = new_cells();
    HistogramSnapshot fresh = histogram_snapshot(*cells);
    for (const HistogramSnapshot *s : {&blank, &fresh}) {
        EXPECT_EQ(s->count, 0u);
        EXPECT_EQ(s->buckets.size(), size_t(kBuckets));
        for (double q : {0.0, 0.5, 0.99, 1.0})
            EXPECT_TRUE(std::isnan(quantile(*s, q))) << q;
        EXPECT_TRUE(std::isnan(snapshot_mean(*s)));
        EXPECT_EQ(s->min, kInf);
        EXPECT_EQ(s->max, -kInf);
    }
}

TEST(HistogramSnapshots, QuantileOutsideZeroOneIsNaN)
{
    auto cells = new_cells();
    histogram_record(*cells, 3.0, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_TRUE(std::isnan(quantile(snapshot, -0.01)));
    EXPECT_TRUE(std::isnan(quantile(snapshot, 1.01)));
    EXPECT_TRUE(std::isnan(quantile(snapshot, std::nan(""))));
    EXPECT_EQ(quantile(snapshot, 0.5), 3.0);
}

TEST(HistogramSnapshots, MergingTwoHalvesEqualsRecordingAll)
{
    std::vector<double> values = draw(std::lognormal_distribution<double>(1.0, 2.0), 8, 100000);
    for (size_t i = 0; i < values.size(); i += 10)
        values[i] = 0.0;
    auto first = new_cells(), second = new_cells(), all = new_cells();
    for (size_t i = 0; i < values.size(); i++) {
        histogram_record(i % 2 ? *first : *second, values[i], int64_t(i));
        histogram_record(*all, values[i], int64_t(i));
    }
    HistogramSnapshot merged;
    merge(merged, histogram_snapshot(*first));
    merge(merged, histogram_snapshot(*second));
    HistogramSnapshot expected = histogram_snapshot(*all);

    EXPECT_EQ(merged.count, expected.count);
    EXPECT_EQ(merged.zero_count, expected.zero_count);
    EXPECT_EQ(merged.buckets, expected.buckets);
    EXPECT_EQ(merged.min, expected.min);
    EXPECT_EQ(merged.max, expected.max);
    EXPECT_EQ(merged.updated_at, expected.updated_at);
    EXPECT_NEAR(merged.sum, expected.sum, 1e-12 * expected.sum);
    for (int k = 0; k <= 1000; k++)
        ASSERT_EQ(quantile(merged, k / 1000.0), quantile(expected, k / 1000.0)) << k;
    check_quantiles(merged, values, "merged");
}

TEST(HistogramSnapshots, MergeWithUnknownExtremesKeepsThemUnknown)
{
    auto cells = new_cells();
    histogram_record(*cells, 2.0, 0);
    HistogramSnapshot known = histogram_snapshot(*cells);
    HistogramSnapshot unknown = known;
    unknown.min = unknown.max = std::nan("");
    HistogramSnapshot into = known;
    merge(into, unknown);
    EXPECT_TRUE(std::isnan(into.min));
    EXPECT_TRUE(std::isnan(into.max));
    EXPECT_EQ(into.count, 2u);
    HistogramSnapshot empty;
    merge(empty, known);
    EXPECT_EQ(empty.min, 2.0) << "merging into an empty snapshot takes the other's extremes";
    merge(empty, HistogramSnapshot{});
    EXPECT_EQ(empty.min, 2.0) << "merging an empty snapshot changes nothing";
    EXPECT_EQ(empty.count, 1u);
}

TEST(HistogramSnapshots, DifferenceGivesTheIntervalsPercentiles)
{
    auto cells = new_cells();
    std::vector<double> before = draw(std::lognormal_distribution<double>(3.0, 1.0), 21, 100000);
    std::vector<double> interval = draw(std::exponential_distribution<double>(1.0), 22, 50000);
    for (double v : before)
        histogram_record(*cells, v, 1);
    HistogramSnapshot older = histogram_snapshot(*cells);
    double ignored_min, ignored_max;
    histogram_take_interval_extremes(*cells, ignored_min, ignored_max);

    for (double v : interval)
        histogram_record(*cells, v, 2);
    HistogramSnapshot newer = histogram_snapshot(*cells);
    double interval_min, interval_max;
    histogram_take_interval_extremes(*cells, interval_min, interval_max);

    HistogramSnapshot delta = difference(newer, older);
    EXPECT_EQ(delta.count, interval.size());
    EXPECT_TRUE(std::isnan(delta.min)) << "the extremes of a difference are unknown";
    EXPECT_TRUE(std::isnan(delta.max));
    long double exact_sum = 0;
    for (double v : interval)
        exact_sum += v;
    EXPECT_NEAR(delta.sum, double(exact_sum), 1e-9 * double(exact_sum));
    EXPECT_EQ(delta.updated_at, 2);

    /* Without extremes: within the stated accuracy everywhere. */
    check_quantiles(delta, interval, "difference");

    /* With the interval's extremes supplied: p0 and p100 exact as well. */
    auto [lowest, highest] = std::minmax_element(interval.begin(), interval.end());
    EXPECT_EQ(interval_min, *lowest);
    EXPECT_EQ(interval_max, *highest);
    delta.min = interval_min;
    delta.max = interval_max;
    check_quantiles(delta, interval, "difference+extremes");
    EXPECT_EQ(quantile(delta, 0.0), *lowest);
    EXPECT_EQ(quantile(delta, 1.0), *highest);
}

TEST(HistogramSnapshots, DifferenceOfEqualSnapshotsIsEmpty)
{
    auto cells = new_cells();
    histogram_record(*cells, 5.0, 1);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    HistogramSnapshot delta = difference(snapshot, snapshot);
    EXPECT_EQ(delta.count, 0u);
    EXPECT_EQ(delta.sum, 0.0);
    EXPECT_TRUE(std::isnan(quantile(delta, 0.5)));
}

TEST(HistogramSnapshots, DifferenceAcrossAResetIsTheNewerSnapshot)
{
    auto cells = new_cells();
    for (int i = 0; i < 10; i++)
        histogram_record(*cells, 5.0, 1);
    HistogramSnapshot older = histogram_snapshot(*cells);

    /* More values in the same bucket after the reset: no counter went down. */
    histogram_reset(*cells);
    for (int i = 0; i < 20; i++)
        histogram_record(*cells, 5.0, 2);
    HistogramSnapshot newer = histogram_snapshot(*cells);
    EXPECT_EQ(newer.resets, older.resets + 1);
    HistogramSnapshot delta = difference(newer, older);
    EXPECT_EQ(delta.count, 20u) << "the reset counter tells, not the buckets";
    EXPECT_EQ(delta.min, 5.0);

    /* A bucket that went down (snapshots from elsewhere, same reset count). */
    HistogramSnapshot shrunk = older;
    shrunk.buckets[bucket_index(5.0)] = 3;
    shrunk.count = 3;
    delta = difference(shrunk, older);
    EXPECT_EQ(delta.count, 3u);
    EXPECT_EQ(delta.buckets, shrunk.buckets);
}

TEST(HistogramIntervals, ResetEmptiesEverything)
{
    auto cells = new_cells();
    for (double v : {0.0, 1.0, 2.0, 1e6})
        histogram_record(*cells, v, 9);
    histogram_reset(*cells);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.count, 0u);
    EXPECT_EQ(cells->count.load(), 0u);
    EXPECT_EQ(snapshot.zero_count, 0u);
    EXPECT_EQ(snapshot.sum, 0.0);
    EXPECT_EQ(snapshot.min, kInf);
    EXPECT_EQ(snapshot.max, -kInf);
    EXPECT_EQ(snapshot.resets, 1u);
    for (uint64_t bucket : snapshot.buckets)
        ASSERT_EQ(bucket, 0u);
    double interval_min, interval_max;
    histogram_take_interval_extremes(*cells, interval_min, interval_max);
    EXPECT_EQ(interval_min, kInf);
    EXPECT_EQ(interval_max, -kInf);
    histogram_record(*cells, 3.0, 10);
    EXPECT_EQ(quantile(histogram_snapshot(*cells), 0.5), 3.0);
}

TEST(HistogramIntervals, TakeIntervalExtremesStartsANewInterval)
{
    auto cells = new_cells();
    double min, max;
    histogram_take_interval_extremes(*cells, min, max);
    EXPECT_EQ(min, kInf);
    EXPECT_EQ(max, -kInf);

    for (double v : {5.0, 1.0, 9.0})
        histogram_record(*cells, v, 0);
    histogram_take_interval_extremes(*cells, min, max);
    EXPECT_EQ(min, 1.0);
    EXPECT_EQ(max, 9.0);
    histogram_take_interval_extremes(*cells, min, max);
    EXPECT_EQ(min, kInf) << "nothing recorded in this interval";
    EXPECT_EQ(max, -kInf);

    histogram_record(*cells, 3.0, 0);
    histogram_take_interval_extremes(*cells, min, max);
    EXPECT_EQ(min, 3.0) << "not the lifetime min 1";
    EXPECT_EQ(max, 3.0) << "not the lifetime max 9";
    histogram_record(*cells, 0.0, 0);
    histogram_take_interval_extremes(*cells, min, max);
    EXPECT_EQ(min, 0.0);
    EXPECT_EQ(max, 0.0);

    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(snapshot.min, 0.0) << "lifetime extremes are untouched";
    EXPECT_EQ(snapshot.max, 9.0);
}

TEST(HistogramQuantile, IgnoresExtremesThatDisagreeWithTheBuckets)
{
    auto cells = new_cells();
    for (double v : {5.0, 6.0, 7.0})
        histogram_record(*cells, v, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(quantile(snapshot, 0.0), 5.0);
    EXPECT_EQ(quantile(snapshot, 1.0), 7.0);
    /* Extremes from a neighbouring interval (a race at the take): not used. */
    const double stale[][2] = {{6.5, 5.5}, {1.0, 100.0}, {0.0, 0.0}, {5.2, 6.9}};
    for (const auto &extremes : stale) {
        snapshot.min = extremes[0];
        snapshot.max = extremes[1];
        EXPECT_LE(relative_error(quantile(snapshot, 0.0), 5.0), kAllowedError) << extremes[0];
        EXPECT_LE(relative_error(quantile(snapshot, 1.0), 7.0), kAllowedError) << extremes[1];
        EXPECT_LE(relative_error(quantile(snapshot, 0.5), 6.0), kAllowedError);
    }
    /* Extremes in the right buckets are trusted (they are exact without a race). */
    snapshot.min = std::nextafter(bucket_upper(bucket_index(5.0)), 0.0);
    snapshot.max = std::nextafter(bucket_lower(bucket_index(7.0)), kInf);
    EXPECT_EQ(quantile(snapshot, 0.0), snapshot.min);
    EXPECT_EQ(quantile(snapshot, 1.0), snapshot.max);
}

TEST(HistogramQuantile, ZeroMinIsTrustedOnlyWithZeros)
{
    auto cells = new_cells();
    histogram_record(*cells, 4.0, 0);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    snapshot.min = 0.0; /* but no zero was counted */
    snapshot.max = std::nan("");
    EXPECT_LE(relative_error(quantile(snapshot, 0.0), 4.0), kAllowedError);
    EXPECT_NE(quantile(snapshot, 0.0), 0.0);
    histogram_record(*cells, 0.0, 0);
    snapshot = histogram_snapshot(*cells);
    EXPECT_EQ(quantile(snapshot, 0.0), 0.0);
    EXPECT_EQ(quantile(snapshot, 1.0), 4.0);
}

/* ---- concurrency ---- */

TEST(HistogramConcurrency, FourThreadsLoseNothing)
{
    constexpr int kThreads = 4;
    constexpr int kPerThread = 250000;
    /* Multiples of 0.25 below 250: every partial sum is exact in any order. */
    auto value_of = [](int i) { return (i % 1000) * 0.25; };

    auto cells = new_cells();
    std::atomic<bool> writing{true};
    double seen_min = kInf, seen_max = -kInf;
    std::thread taker([&] {
        /* The background worker's role: intervals end while values arrive. */
        while (writing.load()) {
            double min, max;
            histogram_take_interval_extremes(*cells, min, max);
            seen_min = std::min(seen_min, min);
            seen_max = std::max(seen_max, max);
            HistogramSnapshot snapshot = histogram_snapshot(*cells);
            if (snapshot.count != 0) {
                /* Values in the buckets are always in sum/min/max too. */
                ASSERT_LE(snapshot.min, quantile(snapshot, 0.0));
                ASSERT_GE(snapshot.max, quantile(snapshot, 1.0));
            }
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; t++) {
        writers.emplace_back([&cells, value_of] {
            for (int i = 0; i < kPerThread; i++)
                histogram_record(*cells, value_of(i), i);
        });
    }
    for (std::thread &writer : writers)
        writer.join();
    writing.store(false);
    taker.join();
    double min, max;
    histogram_take_interval_extremes(*cells, min, max);
    seen_min = std::min(seen_min, min);
    seen_max = std::max(seen_max, max);

    auto reference = new_cells();
    double exact_sum = 0;
    for (int t = 0; t < kThreads; t++) {
        for (int i = 0; i < kPerThread; i++) {
            histogram_record(*reference, value_of(i), i);
            exact_sum += value_of(i);
        }
    }
    HistogramSnapshot expected = histogram_snapshot(*reference);
    HistogramSnapshot snapshot = histogram_snapshot(*cells);
    const uint64_t total = uint64_t(kThreads) * kPerThread;
    EXPECT_EQ(cells->count.load(), total);
    EXPECT_EQ(snapshot.count, total);
    EXPECT_EQ(snapshot.zero_count, uint64_t(kThreads) * (kPerThread / 1000));
    EXPECT_EQ(snapshot.buckets, expected.buckets);
    EXPECT_EQ(snapshot.sum, exact_sum) << "no lost CAS update";
    EXPECT_EQ(snapshot.sum, 124875000.0);
    EXPECT_EQ(snapshot.min, 0.0);
    EXPECT_EQ(snapshot.max, 249.75);
    EXPECT_EQ(snapshot.updated_at, kPerThread - 1);
    EXPECT_EQ(seen_min, 0.0) << "every value lands in some interval";
    EXPECT_EQ(seen_max, 249.75);
}
