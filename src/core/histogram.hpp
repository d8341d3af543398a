/*
 * histogram.hpp: the timing/value histograms behind tusk_metric_record() and
 * the per-operator durations, recorded without locks in shared memory.
 *
 * Layout (DDSketch-style logarithmic buckets):
 *   - Relative accuracy kRelativeAccuracy = 0.0095: every quantile estimate is
 *     within 0.95% of the exact nearest-rank sample value (up to floating-point
 *     rounding, ~1e-15). The user documentation states this as "at most 1%".
 *   - gamma = (1 + alpha) / (1 - alpha). Bucket i covers the half-open range
 *     (gamma^(e-1), gamma^e] with e = i + kMinExponent, and reports the value
 *     2 * gamma^e / (gamma + 1), which is at most alpha away (relatively) from
 *     every value in the bucket.
 *   - Positive values in [kMinValue, kMaxValue] = [1e-9, 1e12] are tracked:
 *     sub-nanosecond durations in milliseconds up to hours, and plain numbers
 *     up to a trillion. Zero has an exact counter of its own. Everything else
 *     (negative, NaN, infinite, positive outside the range) is rejected by
 *     histogram_record(), which records nothing and says why; the caller
 *     raises the SQL error.
 *   - kBuckets = 2546 fixed buckets; one HistogramCells is 20440 bytes
 *     (9 eight-byte cells + 2546 eight-byte bucket counters).
 *
 * Shared memory and concurrency rules:
 *   - HistogramCells lives in raw shared memory and is used by many processes
 *     at once. Every field is a lock-free std::atomic of 8 bytes; nothing in it
 *     is a pointer, so every process may map it at any address.
 *   - histogram_init() runs once, before any other process can see the cells
 *     (e.g. in shmem_startup_hook under AddinShmemInitLock). Placement-new of
 *     the struct first is allowed but not needed: init stores every field.
 *   - histogram_record() takes no lock and may run in any number of processes
 *     at once. It first folds the value into min/max, interval extremes, sum
 *     and updated_at (CAS loops; min/max/updated_at are read first and only
 *     written when the value improves them), then increments its bucket (or
 *     zero_count) with release ordering, then count (relaxed).
 *   - histogram_snapshot() takes no lock. It reads the buckets with acquire
 *     ordering before sum/min/max, so every value counted in the snapshot's
 *     buckets is also reflected in its sum, min and max (a value still being
 *     recorded may show up in sum/min/max without its bucket: harmless).
 *     Its count is zero_count + the bucket sum, so quantiles are
 *     self-consistent even while others record.
 *   - histogram_take_interval_extremes() atomically exchanges the interval
 *     min/max back to +inf/-inf; each recorded value lands in exactly one
 *     interval's min and exactly one interval's max. Call it from one process
 *     (the background worker), right after it takes the interval's snapshot.
 *     A record is not one atomic step, so a value recorded at the very moment
 *     of the take can be counted in one interval's buckets and in the
 *     neighbouring interval's extremes. quantile() only uses extremes that
 *     lie in the lowest/highest occupied bucket, so such a race can move
 *     p0/p100 of that one interval by at most one bucket width (< 2%).
 *   - histogram_reset() takes no lock but is not atomic with respect to a
 *     concurrent record: a value recorded during a reset may survive it in
 *     part (e.g. its bucket but not its sum). It bumps `resets`, so
 *     difference() can tell that a reset happened between two snapshots.
 *     Reset is a rare privileged action; this imprecision is accepted.
 *
 * HistogramSnapshot is plain process-local data (merge, difference, quantile).
 *
 * This file must not include any PostgreSQL header.
 */
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace tusk::core {

namespace histogram_detail {

/* gamma^n by repeated squaring (few roundings), usable at compile time. */
constexpr double power(double base, int exponent)
{
    bool invert = exponent < 0;
    unsigned n = invert ? unsigned(-exponent) : unsigned(exponent);
    double result = 1.0;
    while (n != 0) {
        if (n & 1u)
            result *= base;
        base *= base;
        n >>= 1;
    }
    return invert ? 1.0 / result : result;
}

/* Smallest e with base^e >= value (base > 1, value > 0). */
constexpr int exponent_at_or_above(double base, double value)
{
    int e = 0;
    while (power(base, e) < value)
        e++;
    while (power(base, e - 1) >= value)
        e--;
    return e;
}

}  // namespace histogram_detail

/* Doubles kept as their bit patterns in 64-bit atomics (here and in the metric registry). */
uint64_t double_to_bits(double value);
double bits_to_double(uint64_t bits);
/* cell += value, with a CAS loop. */
void atomic_add_double(std::atomic<uint64_t> &cell, double value);
/* cell = max(cell, value), writing only when that raises it. */
void atomic_raise(std::atomic<int64_t> &cell, int64_t value);

/* Maximum relative error of any quantile estimate ("at most 1%" in the docs). */
constexpr double kRelativeAccuracy = 0.0095;
constexpr double kGamma = (1.0 + kRelativeAccuracy) / (1.0 - kRelativeAccuracy);

/* The range of positive values a histogram can track; name them in errors. */
constexpr double kMinValue = 1e-9;
constexpr double kMaxValue = 1e12;

/* Bucket 0 is the one holding kMinValue, the last one holds kMaxValue. */
constexpr int kMinExponent = histogram_detail::exponent_at_or_above(kGamma, kMinValue);
constexpr int kMaxExponent = histogram_detail::exponent_at_or_above(kGamma, kMaxValue);
constexpr int kBuckets = kMaxExponent - kMinExponent + 1;
static_assert(kMinExponent == -1090 && kMaxExponent == 1455 && kBuckets == 2546,
              "bucket layout changed: update the sizes stated in the header comment");

static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "histograms in shared memory need lock-free 64-bit atomics");
static_assert(std::atomic<int64_t>::is_always_lock_free,
              "histograms in shared memory need lock-free 64-bit atomics");

/* The shared-memory cells of one histogram. See the rules above. */
struct HistogramCells {
    std::atomic<uint64_t> count;          /* values recorded, zeros included; a cheap
                                             read (snapshots count their buckets) */
    std::atomic<uint64_t> zero_count;     /* values exactly 0 */
    std::atomic<uint64_t> sum;            /* double bits */
    std::atomic<uint64_t> min;            /* double bits; +inf when empty */
    std::atomic<uint64_t> max;            /* double bits; -inf when empty */
    std::atomic<uint64_t> interval_min;   /* double bits; since the last take */
    std::atomic<uint64_t> interval_max;   /* double bits; since the last take */
    std::atomic<int64_t> updated_at;      /* largest `now` passed to record */
    std::atomic<uint64_t> resets;         /* how many times reset; never zeroed by reset */
    std::atomic<uint64_t> buckets[kBuckets];
};

static_assert(std::is_standard_layout_v<HistogramCells>, "lives in raw shared memory");
static_assert(sizeof(HistogramCells) == 20440, "update the size stated in the header comment");

enum class RecordResult {
    Recorded,
    Negative,     /* value < 0 */
    NotANumber,   /* NaN */
    Infinite,     /* +inf or -inf */
    TooSmall,     /* 0 < value < kMinValue */
    TooLarge,     /* kMaxValue < value < +inf */
};

/* A short English reason for a rejected value, e.g. for an error detail. */
const char *record_result_message(RecordResult result);

/* Every field to its empty state (min +inf, max -inf, the rest zero). */
void histogram_init(HistogramCells &cells);

/*
 * Records one value observed at caller time `now` (any unit). Lock-free.
 * Returns Recorded, or why the value was rejected; then nothing changed.
 */
RecordResult histogram_record(HistogramCells &cells, double value, int64_t now);

/* Back to the empty state; `resets` is incremented. See the rules above. */
void histogram_reset(HistogramCells &cells);

/*
 * Returns the min and max of the values recorded since the previous call
 * (+inf / -inf when none) and starts a new interval.
 */
void histogram_take_interval_extremes(HistogramCells &cells, double &min, double &max);

/*
 * The bucket of a value in [kMinValue, kMaxValue], in [0, kBuckets). Exact
 * with respect to bucket_lower/bucket_upper: bucket_lower(i) < v <=
 * bucket_upper(i). Inputs outside the range (or NaN) map to the end buckets.
 */
int bucket_index(double value);
/* Exclusive lower bound of bucket i: gamma^(i - 1 + kMinExponent). */
double bucket_lower(int index);
/* Inclusive upper bound of bucket i: gamma^(i + kMinExponent). */
double bucket_upper(int index);
/* The value bucket i reports: 2 * upper / (gamma + 1). */
double bucket_value(int index);

/*
 * One histogram as plain process-local data.
 * Invariant kept by every function here: count == zero_count + sum(buckets)
 * and buckets.size() == kBuckets.
 * min/max: +inf / -inf when empty; NaN when unknown (a difference()).
 */
struct HistogramSnapshot {
    uint64_t count = 0;
    uint64_t zero_count = 0;
    double sum = 0.0;
    double min = std::numeric_limits<double>::infinity();
    double max = -std::numeric_limits<double>::infinity();
    int64_t updated_at = 0;
    uint64_t resets = 0;
    std::vector<uint64_t> buckets = std::vector<uint64_t>(kBuckets, 0);
};

/*
 * A lock-free read of the cells (buckets acquire, the rest relaxed). count is
 * zero_count + the bucket sum; when that is 0, sum is 0 and min/max +inf/-inf.
 */
HistogramSnapshot histogram_snapshot(const HistogramCells &cells);

/*
 * Adds `from` into `into`: counts, sums and resets add, min/max combine (NaN
 * on either non-empty side stays NaN), updated_at is the later one.
 */
void merge(HistogramSnapshot &into, const HistogramSnapshot &from);

/*
 * What was recorded between `older` and `newer` (snapshots of the same cells),
 * for per-interval statistics. Its updated_at is newer's. Its min/max are NaN
 * (unknown; +inf/-inf when nothing was recorded in between): the caller sets
 * them from histogram_take_interval_extremes() before asking quantiles, or
 * leaves them NaN (quantiles then stay within the stated accuracy, only p0 and
 * p100 are no longer exact). If the cells were reset in between (resets
 * differ, or any counter of `newer` is smaller than in `older`), everything
 * since the reset is what `newer` holds, and `newer` itself is returned.
 */
HistogramSnapshot difference(const HistogramSnapshot &newer, const HistogramSnapshot &older);

/*
 * The q-quantile, q in [0, 1], nearest-rank definition exactly as PostgreSQL's
 * percentile_disc computes it: the rank-th smallest value with
 * rank = max(1, ceil(q * count)), the product taken in double as PostgreSQL
 * does. Returns that value's bucket value (0 for zeros), within
 * kRelativeAccuracy of the true value. When min/max are finite and lie in
 * the lowest/highest occupied bucket (where the true extremes are; 0 for the
 * zero count), rank 1 returns min and rank count returns max (so p0
 * and p100 are exact) and every other estimate is clamped into [min, max],
 * which never worsens the error. NaN when the snapshot is empty or q is
 * outside [0, 1] or NaN.
 */
double quantile(const HistogramSnapshot &snapshot, double q);

/* sum / count, NaN when empty. */
double snapshot_mean(const HistogramSnapshot &snapshot);

}  // namespace tusk::core
