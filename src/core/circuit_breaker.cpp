/* circuit_breaker.cpp: the circuit breaker of a failing tier (see circuit_breaker.hpp). */
#include "core/circuit_breaker.hpp"

#include <algorithm>

namespace tusk::core {

CircuitBreaker::CircuitBreaker(const Options &options) : options_(options)
{
    options_.failure_threshold = std::max<uint32_t>(1, options_.failure_threshold);
    options_.initial_backoff = std::max<int64_t>(1, options_.initial_backoff);
    options_.max_backoff = std::max(options_.initial_backoff, options_.max_backoff);
    backoff_ = options_.initial_backoff;
}

bool CircuitBreaker::allow(int64_t now)
{
    if (!open_)
        return true;
    if (now < retry_at_)
        return false;
    if (trial_in_flight_ && now < trial_started_at_ + options_.max_backoff)
        return false;
    trial_in_flight_ = true; /* half-open: this caller is the trial */
    trial_started_at_ = now;
    return true;
}

void CircuitBreaker::record_success()
{
    consecutive_failures_ = 0;
    open_ = false;
    trial_in_flight_ = false;
    backoff_ = options_.initial_backoff;
}

void CircuitBreaker::record_abandoned()
{
    trial_in_flight_ = false;
}

void CircuitBreaker::record_failure(int64_t now)
{
    if (open_) {
        /* The half-open trial failed (or a call that started before opening): back off longer. */
        if (trial_in_flight_)
            backoff_ = std::min(options_.max_backoff, backoff_ > options_.max_backoff / 2
                                                          ? options_.max_backoff
                                                          : backoff_ * 2);
        trial_in_flight_ = false;
        retry_at_ = now + backoff_;
        return;
    }
    if (++consecutive_failures_ < options_.failure_threshold)
        return;
    open_ = true;
    trial_in_flight_ = false;
    backoff_ = options_.initial_backoff;
    retry_at_ = now + backoff_;
}

CircuitBreaker::State CircuitBreaker::state(int64_t now) const
{
    if (!open_)
        return State::Closed;
    return (trial_in_flight_ || now >= retry_at_) ? State::HalfOpen : State::Open;
}

}  // namespace tusk::core
