/* ttl.cpp: time-to-live arithmetic (see ttl.hpp). */
#include "core/ttl.hpp"

namespace tusk::core {

TtlStatus interval_to_ttl(int32_t months, int32_t days, int64_t micros, int64_t &ttl_out)
{
    __int128 total = (__int128(months) * 30 + days) * kMicrosPerDay + micros;
    if (total <= 0) {
        ttl_out = 0;
        return TtlStatus::NotPositive;
    }
    ttl_out = total > INT64_MAX ? INT64_MAX : int64_t(total);
    return TtlStatus::Ok;
}

int64_t expiry_time(int64_t now, int64_t ttl)
{
    __int128 sum = __int128(now) + ttl;
    return sum > INT64_MAX ? INT64_MAX : int64_t(sum);
}

int64_t remaining_ttl(int64_t expires_at, int64_t now)
{
    __int128 left = __int128(expires_at) - now;
    if (left <= 0)
        return 0;
    return left > INT64_MAX ? INT64_MAX : int64_t(left);
}

}  // namespace tusk::core
