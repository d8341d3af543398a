/* cache_key_test.cpp: unit tests for key encoding, key hashes and fingerprints. */
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <xxhash.h>

#include "core/cache_key.hpp"

using namespace tusk::core;

namespace {

std::string encode(const CacheScope &scope, const std::string &key)
{
    std::string out(kScopeBytes + key.size(), '\0');
    size_t n = encode_key(scope, key.data(), key.size(), reinterpret_cast<uint8_t *>(out.data()));
    EXPECT_EQ(n, out.size());
    return out;
}

uint64_t hash_of(const std::string &s) { return key_hash(s.data(), s.size()); }

Fingerprint fp_of(std::initializer_list<const char *> parts)
{
    FingerprintBuilder b;
    for (const char *p : parts) {
        if (p == nullptr)
            b.add_null();
        else
            b.add(std::string_view(p));
    }
    return b.finish();
}

TEST(EncodeKey, ScopeBytesThenKeyBytes)
{
    EXPECT_EQ(kScopeBytes, 8u);
    const CacheScope scope{0x01020304u, 0xA0B0C0D0u};
    const std::string key = "user:42";
    std::vector<uint8_t> out(kScopeBytes + key.size() + 16, 0xCC);
    size_t n = encode_key(scope, key.data(), key.size(), out.data());
    ASSERT_EQ(n, kScopeBytes + key.size());

    uint32_t database, role;
    std::memcpy(&database, out.data(), 4);
    std::memcpy(&role, out.data() + 4, 4);
    EXPECT_EQ(database, scope.database);
    EXPECT_EQ(role, scope.role);
    EXPECT_EQ(std::memcmp(out.data() + kScopeBytes, key.data(), key.size()), 0);
    for (size_t i = n; i < out.size(); i++)
        EXPECT_EQ(out[i], 0xCC) << "encode_key wrote past its output at byte " << i;
}

TEST(EncodeKey, EmptyKeyIsJustTheScope)
{
    const CacheScope scope{5, 6};
    uint8_t out[kScopeBytes + 4];
    std::memset(out, 0xCC, sizeof out);
    EXPECT_EQ(encode_key(scope, nullptr, 0, out), kScopeBytes);
    for (size_t i = kScopeBytes; i < sizeof out; i++)
        EXPECT_EQ(out[i], 0xCC);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(out), kScopeBytes), encode(scope, ""));
}

TEST(EncodeKey, ScopeOfReadsBackTheScope)
{
    const CacheScope scope{0xDEADBEEF, 0x01020304};
    uint8_t out[kScopeBytes + 3];
    encode_key(scope, "abc", 3, out);
    const CacheScope back = scope_of(out);
    EXPECT_EQ(back.database, scope.database);
    EXPECT_EQ(back.role, scope.role);
    const CacheScope swapped = scope_of(reinterpret_cast<const uint8_t *>(encode({7, 9}, "").data()));
    EXPECT_EQ(swapped.database, 7u);
    EXPECT_EQ(swapped.role, 9u);
}

TEST(EncodeKey, ScopePrefixSelectsTheScope)
{
    const CacheScope a{16384, 10}, b{16384, 20}, c{16385, 10}, swapped{10, 16384};
    const std::string prefix_a = encode(a, "");
    const std::string ka = encode(a, "user:1");
    EXPECT_EQ(ka.compare(0, kScopeBytes, prefix_a), 0) << "encoded key starts with its scope";
    EXPECT_EQ(ka.substr(kScopeBytes), "user:1");
    EXPECT_NE(encode(b, "user:1"), ka) << "same key, other role";
    EXPECT_NE(encode(c, "user:1"), ka) << "same key, other database";
    EXPECT_NE(encode(swapped, "user:1"), ka) << "database and role are not interchangeable";
    for (const CacheScope *other : {&b, &c, &swapped})
        EXPECT_NE(encode(*other, "").substr(0, kScopeBytes), prefix_a);
    /* A user prefix within a scope is a byte prefix of the encoded keys. */
    const std::string user_prefix = encode(a, "user:");
    EXPECT_EQ(ka.compare(0, user_prefix.size(), user_prefix), 0);
    EXPECT_NE(encode(a, "item:1").compare(0, user_prefix.size(), user_prefix), 0);
}

TEST(KeyHash, IsDeterministic)
{
    const std::string s = "some key bytes";
    const std::string copy = s; /* another buffer, same bytes */
    EXPECT_EQ(hash_of(s), hash_of(copy));
    EXPECT_EQ(key_hash(s.data(), s.size()), key_hash(copy.data(), copy.size()));
    EXPECT_EQ(key_hash(nullptr, 0), key_hash("", 0));
}

TEST(KeyHash, DiffersForDifferentInputs)
{
    EXPECT_NE(hash_of("a"), hash_of("b"));
    EXPECT_NE(hash_of("ab"), hash_of("ba"));
    EXPECT_NE(hash_of(""), hash_of(std::string(1, '\0')));
    EXPECT_NE(hash_of(std::string(1, '\0')), hash_of(std::string(2, '\0')));
    std::string big(5000, 'x'), big2 = big;
    big2[4321] ^= 1;
    EXPECT_NE(hash_of(big), hash_of(big2)) << "one flipped bit deep in a long key";
    EXPECT_NE(hash_of(encode({1, 2}, "k")), hash_of(encode({1, 3}, "k")));

    std::set<uint64_t> seen;
    for (int i = 0; i < 20000; i++)
        seen.insert(hash_of("key:" + std::to_string(i)));
    EXPECT_EQ(seen.size(), 20000u);
}

TEST(KeyHash, IsXxh3_64)
{
    for (const std::string &s : {std::string(), std::string("a"), std::string("hello world"), std::string(300, 'z')})
        EXPECT_EQ(hash_of(s), XXH3_64bits(s.data(), s.size())) << s;
}

TEST(FingerprintBuilder, SameInputsGiveTheSameFingerprint)
{
    EXPECT_EQ(fp_of({"select 1", "42"}), fp_of({"select 1", "42"}));
    EXPECT_EQ(fp_of({}), fp_of({}));
    EXPECT_EQ(fp_of({nullptr, "x", ""}), fp_of({nullptr, "x", ""}));
    /* string_view and pointer/length overloads agree. */
    FingerprintBuilder a, b;
    a.add(std::string_view("abc"));
    b.add("abc", 3);
    EXPECT_EQ(a.finish(), b.finish());
    EXPECT_NE(fp_of({"select 1"}), Fingerprint{}) << "not the all-zero fingerprint";
}

TEST(FingerprintBuilder, PartBoundariesMatter)
{
    EXPECT_NE(fp_of({"ab", "c"}), fp_of({"a", "bc"}));
    EXPECT_NE(fp_of({"abc"}), fp_of({"ab", "c"}));
    EXPECT_NE(fp_of({"a"}), fp_of({"a", ""})) << "an extra empty part counts";
    EXPECT_NE(fp_of({""}), fp_of({})) << "one empty part vs no parts";
    EXPECT_NE(fp_of({"", ""}), fp_of({""}));
}

TEST(FingerprintBuilder, NullDiffersFromEmptyString)
{
    EXPECT_NE(fp_of({nullptr}), fp_of({""}));
    EXPECT_NE(fp_of({nullptr}), fp_of({}));
    EXPECT_NE(fp_of({"q", nullptr}), fp_of({"q", ""}));
    EXPECT_NE(fp_of({nullptr, "x"}), fp_of({"", "x"}));
    EXPECT_NE(fp_of({nullptr, ""}), fp_of({"", nullptr}));
    EXPECT_NE(fp_of({nullptr, nullptr}), fp_of({nullptr}));
}

TEST(FingerprintBuilder, OrderAndContentMatter)
{
    EXPECT_NE(fp_of({"a", "b"}), fp_of({"b", "a"}));
    FingerprintBuilder a, b;
    a.add("a\0b", 3);
    b.add("a\0c", 3);
    EXPECT_NE(a.finish(), b.finish()) << "bytes after a NUL are hashed too";
}

TEST(FingerprintBuilder, FinishDoesNotConsumeTheState)
{
    FingerprintBuilder a;
    a.add("first");
    Fingerprint f1 = a.finish();
    EXPECT_EQ(a.finish(), f1);
    a.add("second");
    Fingerprint f2 = a.finish();
    EXPECT_NE(f2, f1);
    EXPECT_EQ(f2, fp_of({"first", "second"}));
}

}  // namespace
