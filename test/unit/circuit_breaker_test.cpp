/* Unit tests of the circuit breaker (src/core/circuit_breaker.hpp). */
#include <gtest/gtest.h>

#include "core/circuit_breaker.hpp"

using tusk::core::CircuitBreaker;
using State = CircuitBreaker::State;

namespace {

CircuitBreaker::Options options(uint32_t threshold, int64_t initial, int64_t max)
{
    CircuitBreaker::Options o;
    o.failure_threshold = threshold;
    o.initial_backoff = initial;
    o.max_backoff = max;
    return o;
}

}  // namespace

TEST(CircuitBreaker, ClosedAllowsEveryCall)
{
    CircuitBreaker b(options(3, 100, 1000));
    for (int64_t t = 0; t < 50; t++) {
        EXPECT_TRUE(b.allow(t));
        b.record_success();
    }
    EXPECT_EQ(b.state(50), State::Closed);
}

TEST(CircuitBreaker, OpensAfterThresholdConsecutiveFailures)
{
    CircuitBreaker b(options(3, 100, 1000));
    b.record_failure(0);
    b.record_failure(1);
    EXPECT_EQ(b.state(2), State::Closed);
    EXPECT_TRUE(b.allow(2));
    b.record_failure(2);
    EXPECT_EQ(b.state(3), State::Open);
    EXPECT_FALSE(b.allow(3));
    EXPECT_FALSE(b.allow(101));
    EXPECT_EQ(b.retry_at(), 102);
}

TEST(CircuitBreaker, SuccessResetsTheFailureCount)
{
    CircuitBreaker b(options(2, 100, 1000));
    b.record_failure(0);
    b.record_success();
    b.record_failure(1);
    EXPECT_EQ(b.state(2), State::Closed) << "failures must be consecutive";
    b.record_failure(2);
    EXPECT_EQ(b.state(3), State::Open);
}

TEST(CircuitBreaker, HalfOpenLetsExactlyOneTrialThrough)
{
    CircuitBreaker b(options(1, 100, 1000));
    b.record_failure(0);
    EXPECT_FALSE(b.allow(99));
    EXPECT_EQ(b.state(100), State::HalfOpen);
    EXPECT_TRUE(b.allow(100)) << "the trial call";
    EXPECT_FALSE(b.allow(100)) << "only one trial at a time";
    EXPECT_FALSE(b.allow(150));
    b.record_success();
    EXPECT_EQ(b.state(150), State::Closed);
    EXPECT_TRUE(b.allow(150));
    EXPECT_TRUE(b.allow(151));
}

TEST(CircuitBreaker, FailedTrialDoublesTheBackoffUpToTheCap)
{
    CircuitBreaker b(options(1, 100, 450));
    int64_t now = 0;
    b.record_failure(now);
    const int64_t expected[] = {200, 400, 450, 450};
    for (int64_t backoff : expected) {
        now = b.retry_at();
        ASSERT_TRUE(b.allow(now));
        b.record_failure(now);
        EXPECT_EQ(b.current_backoff(), backoff);
        EXPECT_EQ(b.retry_at(), now + backoff);
        EXPECT_FALSE(b.allow(now + backoff - 1));
    }
    /* Recovery starts over from the initial back-off. */
    now = b.retry_at();
    ASSERT_TRUE(b.allow(now));
    b.record_success();
    b.record_failure(now + 1);
    EXPECT_EQ(b.retry_at(), now + 1 + 100);
}

TEST(CircuitBreaker, HungServerCostsOneTimeoutPerBackoffPeriod)
{
    /* 300 calls, one every 10 ms, each attempt to a hung server costing 100 ms. */
    CircuitBreaker b(options(1, 1000000, 30000000));
    int64_t now = 0;
    int attempts = 0;
    for (int call = 0; call < 300; call++) {
        if (b.allow(now)) {
            attempts++;
            now += 100000; /* the timeout */
            b.record_failure(now);
        }
        now += 10000;
    }
    /* Over about 3.3 s: the first call, then trials at +1 s and +2 s later. */
    EXPECT_LE(attempts, 3);
    EXPECT_GE(attempts, 2);
}

TEST(CircuitBreaker, NonsenseOptionsAreClamped)
{
    CircuitBreaker b(options(0, 0, -5));
    b.record_failure(0);
    EXPECT_EQ(b.state(0), State::Open) << "a threshold of 0 acts as 1";
    EXPECT_GE(b.current_backoff(), 1);
    EXPECT_TRUE(b.allow(b.retry_at()));
}

TEST(CircuitBreaker, AbandonedTrialLetsTheNextCallTryWithoutLongerBackoff)
{
    CircuitBreaker b(options(1, 100, 1000));
    b.record_failure(0);
    ASSERT_TRUE(b.allow(100));
    EXPECT_FALSE(b.allow(100));
    b.record_abandoned();
    EXPECT_EQ(b.current_backoff(), 100) << "a cancelled trial says nothing about the tier";
    EXPECT_TRUE(b.allow(101)) << "the next caller becomes the trial";
}

TEST(CircuitBreaker, AbandonedCallLeavesAClosedBreakerClosed)
{
    CircuitBreaker b(options(1, 100, 1000));
    ASSERT_TRUE(b.allow(0));
    b.record_abandoned();
    EXPECT_EQ(b.state(0), State::Closed);
    EXPECT_TRUE(b.allow(1));
}

TEST(CircuitBreaker, ATrialThatNeverReportsBackExpires)
{
    CircuitBreaker b(options(1, 100, 1000));
    b.record_failure(0);
    ASSERT_TRUE(b.allow(100));
    EXPECT_FALSE(b.allow(600));
    EXPECT_FALSE(b.allow(1099));
    EXPECT_TRUE(b.allow(1100)) << "after max_backoff a lost trial is replaced";
    EXPECT_FALSE(b.allow(1101));
}
