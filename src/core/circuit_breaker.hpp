/*
 * circuit_breaker.hpp: decides whether a failing tier (Redis) is tried now.
 *
 * Closed: every call tries the tier. After `failure_threshold` failures in a
 * row the breaker opens: calls skip the tier until the back-off has passed.
 * Then one call is let through (half-open): success closes the breaker,
 * failure opens it again with the back-off doubled, up to `max_backoff`.
 * So a hung server costs one timeout per back-off period, not one per call.
 *
 * Times are microseconds passed in by the caller. Plain data, no pointers:
 * one breaker per process, or one in shared memory under the caller's lock.
 * Free of PostgreSQL headers.
 */
#pragma once

#include <cstdint>

namespace tusk::core {

class CircuitBreaker {
  public:
    enum class State { Closed, Open, HalfOpen };

    struct Options {
        uint32_t failure_threshold = 1;
        int64_t initial_backoff = 1000000; /* 1 s */
        int64_t max_backoff = 30000000;    /* 30 s */
    };

    CircuitBreaker() : CircuitBreaker(Options{}) {}
    explicit CircuitBreaker(const Options &options);

    /*
     * True when the tier should be tried now; in half-open state only the
     * first caller, unless that trial has gone unanswered for max_backoff
     * (its caller vanished without a verdict): then the next caller tries.
     */
    bool allow(int64_t now);
    void record_success();
    void record_failure(int64_t now);
    /*
     * A call that allow() let through ended without a verdict on the tier
     * (the caller was cancelled): ends a half-open trial, changes nothing else.
     */
    void record_abandoned();

    State state(int64_t now) const;
    /* When an open breaker lets the next trial call through. */
    int64_t retry_at() const { return retry_at_; }
    int64_t current_backoff() const { return backoff_; }

  private:
    Options options_;
    uint32_t consecutive_failures_ = 0;
    bool open_ = false;
    bool trial_in_flight_ = false;
    int64_t backoff_ = 0;
    int64_t retry_at_ = 0;
    int64_t trial_started_at_ = 0;
};

}  // namespace tusk::core
