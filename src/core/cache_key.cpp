/* cache_key.cpp: L1 key encoding, key hashes and fingerprints (see cache_key.hpp). */
#include "core/cache_key.hpp"

#include <cstring>
#include <new>
#include <type_traits>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace tusk::core {

static_assert(sizeof(XXH3_state_t) <= 640, "FingerprintBuilder::state_ is too small");
static_assert(std::is_trivially_destructible_v<FingerprintBuilder>);

size_t encode_key(const CacheScope &scope, const void *key, size_t key_length, uint8_t *out)
{
    std::memcpy(out, &scope.database, 4);
    std::memcpy(out + 4, &scope.role, 4);
    if (key_length > 0)
        std::memcpy(out + kScopeBytes, key, key_length);
    return kScopeBytes + key_length;
}

CacheScope scope_of(const uint8_t *encoded)
{
    CacheScope scope;
    std::memcpy(&scope.database, encoded, 4);
    std::memcpy(&scope.role, encoded + 4, 4);
    return scope;
}

uint64_t key_hash(const void *data, size_t length) { return XXH3_64bits(data, length); }

FingerprintBuilder::FingerprintBuilder()
{
    auto *state = new (state_) XXH3_state_t;
    XXH3_128bits_reset(state);
}

void FingerprintBuilder::add(const void *data, size_t length)
{
    auto *state = reinterpret_cast<XXH3_state_t *>(state_);
    uint64_t len = length;
    XXH3_128bits_update(state, &len, sizeof len);
    if (length > 0)
        XXH3_128bits_update(state, data, length);
}

void FingerprintBuilder::add_null()
{
    auto *state = reinterpret_cast<XXH3_state_t *>(state_);
    uint64_t marker = UINT64_MAX;
    XXH3_128bits_update(state, &marker, sizeof marker);
}

Fingerprint FingerprintBuilder::finish() const
{
    auto *state = reinterpret_cast<const XXH3_state_t *>(state_);
    XXH128_hash_t h = XXH3_128bits_digest(state);
    Fingerprint f;
    f.lo = h.low64;
    f.hi = h.high64;
    return f;
}

}  // namespace tusk::core
