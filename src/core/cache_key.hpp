/*
 * cache_key.hpp: how a user's cache key becomes the key an L1 entry is
 * stored under, and how the fingerprint of "what produced a value" is made.
 *
 * An L1 key is the scope (database and role, as 32-bit ids) followed by the
 * user's key bytes, so the same user key of two roles are two entries and a
 * prefix of the encoded key selects one scope or one user prefix within it.
 * Hashes are XXH3; a hash only finds an entry, the full key accepts it.
 * Free of PostgreSQL headers.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/l1_store.hpp"

namespace tusk::core {

struct CacheScope {
    uint32_t database;
    uint32_t role;
};

constexpr size_t kScopeBytes = 8;

/* Writes scope + key to out (which holds kScopeBytes + key_length bytes); returns the length. */
size_t encode_key(const CacheScope &scope, const void *key, size_t key_length, uint8_t *out);

/* The scope an encoded key (at least kScopeBytes long) was made with. */
CacheScope scope_of(const uint8_t *encoded);

uint64_t key_hash(const void *data, size_t length);

/*
 * Fingerprint of several byte strings. Each part is length-prefixed, so
 * ("ab", "c") and ("a", "bc") differ. Trivially destructible, so a
 * PostgreSQL error may safely longjmp past one.
 */
class FingerprintBuilder {
  public:
    FingerprintBuilder();
    FingerprintBuilder(const FingerprintBuilder &) = delete;
    FingerprintBuilder &operator=(const FingerprintBuilder &) = delete;

    void add(const void *data, size_t length);
    void add(std::string_view s) { add(s.data(), s.size()); }
    /* Marks an absent part (SQL NULL), distinct from an empty one. */
    void add_null();
    Fingerprint finish() const;

  private:
    alignas(64) unsigned char state_[640];
};

}  // namespace tusk::core
