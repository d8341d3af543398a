/* histogram.cpp: lock-free log-bucket histograms in shared memory (see histogram.hpp). */
#include "core/histogram.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

namespace tusk::core {

uint64_t double_to_bits(double value)
{
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

double bits_to_double(uint64_t bits)
{
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

void atomic_add_double(std::atomic<uint64_t> &cell, double value)
{
    uint64_t current = cell.load(std::memory_order_relaxed);
    while (!cell.compare_exchange_weak(current, double_to_bits(bits_to_double(current) + value),
                                       std::memory_order_relaxed)) {
    }
}

void atomic_raise(std::atomic<int64_t> &cell, int64_t value)
{
    int64_t current = cell.load(std::memory_order_relaxed);
    while (value > current) {
        if (cell.compare_exchange_weak(current, value, std::memory_order_relaxed))
            return;
    }
}

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/*
 * kBounds[j] = gamma^(kMinExponent - 1 + j), j = 0 .. kBuckets; bucket i is
 * (kBounds[i], kBounds[i + 1]]. Built at compile time with the same power()
 * that chose kMinExponent/kMaxExponent, so kBounds[0] < kMinValue <= kBounds[1]
 * and kBounds[kBuckets - 1] < kMaxValue <= kBounds[kBuckets] hold by construction.
 */
using BoundsTable = std::array<double, kBuckets + 1>;

constexpr BoundsTable make_bounds()
{
    BoundsTable bounds{};
    for (int j = 0; j <= kBuckets; j++)
        bounds[j] = histogram_detail::power(kGamma, kMinExponent - 1 + j);
    return bounds;
}

constexpr BoundsTable kBounds = make_bounds();

static_assert(kBounds[0] < kMinValue && kMinValue <= kBounds[1], "kMinValue lies in bucket 0");
static_assert(kBounds[kBuckets - 1] < kMaxValue && kMaxValue <= kBounds[kBuckets],
              "kMaxValue lies in the last bucket");

/* Only a first guess: bucket_index() corrects it against kBounds. */
const double kInverseLogGamma = 1.0 / std::log(kGamma);

uint64_t to_bits(double value) { return double_to_bits(value); }
double from_bits(uint64_t bits) { return bits_to_double(bits); }

/* Lowers the cell to `value` if that is smaller; no write otherwise. */
void fold_min(std::atomic<uint64_t> &cell, double value)
{
    uint64_t current = cell.load(std::memory_order_relaxed);
    while (value < from_bits(current)) {
        if (cell.compare_exchange_weak(current, to_bits(value), std::memory_order_relaxed))
            return;
    }
}

/* Raises the cell to `value` if that is larger; no write otherwise. */
void fold_max(std::atomic<uint64_t> &cell, double value)
{
    uint64_t current = cell.load(std::memory_order_relaxed);
    while (value > from_bits(current)) {
        if (cell.compare_exchange_weak(current, to_bits(value), std::memory_order_relaxed))
            return;
    }
}

void add_double(std::atomic<uint64_t> &cell, double value) { atomic_add_double(cell, value); }
void raise_int(std::atomic<int64_t> &cell, int64_t value) { atomic_raise(cell, value); }

RecordResult classify(double value)
{
    if (std::isnan(value))
        return RecordResult::NotANumber;
    if (std::isinf(value))
        return RecordResult::Infinite;
    if (value < 0)
        return RecordResult::Negative;
    if (value == 0)
        return RecordResult::Recorded;
    if (value < kMinValue)
        return RecordResult::TooSmall;
    if (value > kMaxValue)
        return RecordResult::TooLarge;
    return RecordResult::Recorded;
}

/* Empty state of every field but `resets`. */
void clear_cells(HistogramCells &cells)
{
    for (auto &bucket : cells.buckets)
        bucket.store(0, std::memory_order_relaxed);
    cells.zero_count.store(0, std::memory_order_relaxed);
    cells.count.store(0, std::memory_order_relaxed);
    cells.sum.store(to_bits(0.0), std::memory_order_relaxed);
    cells.min.store(to_bits(kInfinity), std::memory_order_relaxed);
    cells.max.store(to_bits(-kInfinity), std::memory_order_relaxed);
    cells.interval_min.store(to_bits(kInfinity), std::memory_order_relaxed);
    cells.interval_max.store(to_bits(-kInfinity), std::memory_order_relaxed);
    cells.updated_at.store(0, std::memory_order_relaxed);
}

}  // namespace

const char *record_result_message(RecordResult result)
{
    switch (result) {
    case RecordResult::Recorded:
        return "recorded";
    case RecordResult::Negative:
        return "value is negative";
    case RecordResult::NotANumber:
        return "value is NaN";
    case RecordResult::Infinite:
        return "value is infinite";
    case RecordResult::TooSmall:
        return "positive value is below the smallest trackable value 1e-9";
    case RecordResult::TooLarge:
        return "value is above the largest trackable value 1e12";
    }
    return "unknown result";
}

void histogram_init(HistogramCells &cells)
{
    clear_cells(cells);
    cells.resets.store(0, std::memory_order_relaxed);
}

RecordResult histogram_record(HistogramCells &cells, double value, int64_t now)
{
    RecordResult result = classify(value);
    if (result != RecordResult::Recorded)
        return result;
    if (value == 0)
        value = 0.0; /* -0.0 becomes +0.0: min/max never show "-0" */

    /* Everything a snapshot derives from the value comes before its bucket. */
    fold_min(cells.min, value);
    fold_max(cells.max, value);
    fold_min(cells.interval_min, value);
    fold_max(cells.interval_max, value);
    add_double(cells.sum, value);
    raise_int(cells.updated_at, now);

    std::atomic<uint64_t> &counter = value == 0 ? cells.zero_count : cells.buckets[bucket_index(value)];
    counter.fetch_add(1, std::memory_order_release);
    cells.count.fetch_add(1, std::memory_order_relaxed);
    return RecordResult::Recorded;
}

void histogram_reset(HistogramCells &cells)
{
    cells.resets.fetch_add(1, std::memory_order_acq_rel);
    clear_cells(cells);
}

void histogram_take_interval_extremes(HistogramCells &cells, double &min, double &max)
{
    min = from_bits(cells.interval_min.exchange(to_bits(kInfinity), std::memory_order_acq_rel));
    max = from_bits(cells.interval_max.exchange(to_bits(-kInfinity), std::memory_order_acq_rel));
}

int bucket_index(double value)
{
    if (!(value > kBounds[1]))
        return 0; /* bucket 0, below the range, or NaN */
    if (value > kBounds[kBuckets - 1])
        return kBuckets - 1; /* the last bucket, or above the range */

    /*
     * Now 1 <= index <= kBuckets - 2, and the index is ceil(log_gamma(value))
     * - kMinExponent up to rounding. `position` is positive here, so the
     * truncating conversion is a floor (one instruction, unlike std::ceil);
     * floor(x + 1) equals ceil(x) but at exact powers, which the loops fix.
     */
    double position = std::log(value) * kInverseLogGamma - (kMinExponent - 1);
    int index = std::clamp(static_cast<int>(position), 1, kBuckets - 2);
    while (value <= kBounds[index])
        index--;
    while (value > kBounds[index + 1])
        index++;
    return index;
}

double bucket_lower(int index)
{
    return kBounds[std::clamp(index, 0, kBuckets - 1)];
}

double bucket_upper(int index)
{
    return kBounds[std::clamp(index, 0, kBuckets - 1) + 1];
}

double bucket_value(int index)
{
    return 2.0 * bucket_upper(index) / (kGamma + 1.0);
}

HistogramSnapshot histogram_snapshot(const HistogramCells &cells)
{
    HistogramSnapshot snapshot;
    snapshot.resets = cells.resets.load(std::memory_order_acquire);
    /* Acquire: whatever these counters include is in sum/min/max read below. */
    snapshot.zero_count = cells.zero_count.load(std::memory_order_acquire);
    uint64_t count = snapshot.zero_count;
    for (int i = 0; i < kBuckets; i++) {
        snapshot.buckets[i] = cells.buckets[i].load(std::memory_order_acquire);
        count += snapshot.buckets[i];
    }
    snapshot.count = count;
    snapshot.sum = from_bits(cells.sum.load(std::memory_order_relaxed));
    snapshot.min = from_bits(cells.min.load(std::memory_order_relaxed));
    snapshot.max = from_bits(cells.max.load(std::memory_order_relaxed));
    snapshot.updated_at = cells.updated_at.load(std::memory_order_relaxed);
    if (count == 0) {
        /* A reset racing with this read can leave stray values: report empty. */
        snapshot.sum = 0.0;
        snapshot.min = kInfinity;
        snapshot.max = -kInfinity;
    }
    return snapshot;
}

void merge(HistogramSnapshot &into, const HistogramSnapshot &from)
{
    if (from.count != 0) {
        if (into.count == 0) {
            into.min = from.min;
            into.max = from.max;
        } else {
            /* std::min/max would drop a NaN (unknown) on one side: keep it. */
            bool unknown_min = std::isnan(into.min) || std::isnan(from.min);
            bool unknown_max = std::isnan(into.max) || std::isnan(from.max);
            into.min = unknown_min ? kNaN : std::min(into.min, from.min);
            into.max = unknown_max ? kNaN : std::max(into.max, from.max);
        }
    }
    into.buckets.resize(kBuckets, 0);
    for (size_t i = 0; i < from.buckets.size() && i < into.buckets.size(); i++)
        into.buckets[i] += from.buckets[i];
    into.count += from.count;
    into.zero_count += from.zero_count;
    into.sum += from.sum;
    into.updated_at = std::max(into.updated_at, from.updated_at);
    into.resets += from.resets;
}

HistogramSnapshot difference(const HistogramSnapshot &newer, const HistogramSnapshot &older)
{
    bool reset = newer.resets != older.resets || newer.zero_count < older.zero_count ||
                 newer.buckets.size() != older.buckets.size();
    for (size_t i = 0; !reset && i < newer.buckets.size(); i++)
        reset = newer.buckets[i] < older.buckets[i];
    if (reset)
        return newer;

    HistogramSnapshot delta;
    delta.zero_count = newer.zero_count - older.zero_count;
    uint64_t count = delta.zero_count;
    for (size_t i = 0; i < newer.buckets.size(); i++) {
        delta.buckets[i] = newer.buckets[i] - older.buckets[i];
        count += delta.buckets[i];
    }
    delta.count = count;
    delta.updated_at = newer.updated_at;
    delta.resets = newer.resets;
    if (count != 0) {
        delta.sum = std::max(0.0, newer.sum - older.sum);
        delta.min = kNaN; /* unknown: the caller supplies the interval's extremes */
        delta.max = kNaN;
    }
    return delta;
}

double quantile(const HistogramSnapshot &snapshot, double q)
{
    if (!(q >= 0.0 && q <= 1.0))
        return kNaN;
    const std::vector<uint64_t> &buckets = snapshot.buckets;
    const int bucket_count = static_cast<int>(std::min<size_t>(buckets.size(), kBuckets));

    int lowest = -1; /* lowest and highest occupied bucket, -1: only zeros */
    int highest = -1;
    uint64_t total = snapshot.zero_count;
    for (int i = 0; i < bucket_count; i++) {
        if (buckets[i] == 0)
            continue;
        if (lowest < 0)
            lowest = i;
        highest = i;
        total += buckets[i];
    }
    if (total == 0)
        return kNaN;

    /* Nearest rank, computed as PostgreSQL's percentile_disc does. */
    double exact_rank = std::ceil(q * static_cast<double>(total));
    uint64_t rank = exact_rank < 1.0 ? 1 : static_cast<uint64_t>(exact_rank);
    rank = std::min(rank, total);

    /*
     * min/max are used only when they lie in the lowest/highest occupied
     * bucket (or are 0 when that is the zero count), where the true extremes
     * are: extremes from outside (a race at the interval take, see the
     * header) are ignored. Then the smallest and largest ranks are exact, and
     * other estimates are clamped into [min, max], which never moves them
     * away from the true value.
     */
    auto in_bucket = [](double value, int index) {
        return index < 0 ? value == 0.0 : value > bucket_lower(index) && value <= bucket_upper(index);
    };
    bool min_known = std::isfinite(snapshot.min) &&
                     in_bucket(snapshot.min, snapshot.zero_count > 0 ? -1 : lowest);
    bool max_known = std::isfinite(snapshot.max) && in_bucket(snapshot.max, highest);
    if (rank == 1 && min_known)
        return snapshot.min;
    if (rank == total && max_known)
        return snapshot.max;

    double estimate = 0.0;
    if (rank > snapshot.zero_count) {
        uint64_t seen = snapshot.zero_count;
        for (int i = lowest; i <= highest; i++) {
            seen += buckets[i];
            if (seen >= rank) {
                estimate = bucket_value(i);
                break;
            }
        }
    }
    if (min_known)
        estimate = std::max(estimate, snapshot.min);
    if (max_known)
        estimate = std::min(estimate, snapshot.max);
    return estimate;
}

double snapshot_mean(const HistogramSnapshot &snapshot)
{
    if (snapshot.count == 0)
        return kNaN;
    return snapshot.sum / static_cast<double>(snapshot.count);
}

}  // namespace tusk::core
