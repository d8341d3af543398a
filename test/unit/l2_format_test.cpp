/* Unit tests of the L2 key and value formats (src/core/l2_format.hpp). */
#include <cstring>
#include <gtest/gtest.h>

#include "core/l2_format.hpp"

using namespace tusk::core;

TEST(L2Format, ScopePrefixIsPrefixDatabaseRoleKey)
{
    EXPECT_EQ(l2_scope_prefix("tusk:", "shop", "alice"), "tusk:shop:alice:");
}

TEST(L2Format, NamesCannotForgeAnotherScope)
{
    /* Unescaped, database "a:b" + role "c" and database "a" + role "b:c" would collide. */
    std::string one = l2_scope_prefix("t:", "a:b", "c");
    std::string two = l2_scope_prefix("t:", "a", "b:c");
    EXPECT_NE(one, two);
    EXPECT_EQ(one, "t:a%3Ab:c:");
    EXPECT_EQ(two, "t:a:b%3Ac:");
    /* And a literal "%3A" in a name is not the escape of ':'. */
    EXPECT_NE(l2_scope_prefix("t:", "a%3Ab", "c"), one);
    /* No scope prefix is a prefix of another scope's keys. */
    std::string alice = l2_scope_prefix("t:", "db", "alice");
    std::string alice2 = l2_scope_prefix("t:", "db", "alice:x");
    EXPECT_NE(alice2.substr(0, alice.size()), alice);
}

TEST(L2Format, MatchPatternEscapesGlobCharacters)
{
    EXPECT_EQ(l2_match_pattern("t:db:r:user:"), "t:db:r:user:*");
    EXPECT_EQ(l2_match_pattern("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f*");
    EXPECT_EQ(l2_match_pattern(""), "*");
}

TEST(L2Format, ValueRoundTrips)
{
    Fingerprint fp;
    fp.lo = 0x0123456789abcdefULL;
    fp.hi = 0xfedcba9876543210ULL;
    std::string json = "[{\"a\": 1}, {\"a\": \"}\"}]";
    const uint8_t validity[3] = {0x00, 0xab, 0xff};
    std::string stored = l2_encode_value(fp, validity, sizeof validity, json);
    EXPECT_EQ(stored, "{\"fingerprint\":\"fedcba98765432100123456789abcdef\",\"validity\":\"00abff\",\"value\":" +
                          json + "}");
    Fingerprint back;
    std::string_view value, hex;
    ASSERT_TRUE(l2_decode_value(stored, back, hex, value));
    EXPECT_EQ(back, fp);
    EXPECT_EQ(value, json);
    ASSERT_EQ(hex, "00abff");
    uint8_t decoded[3];
    ASSERT_TRUE(l2_decode_hex(hex, decoded));
    EXPECT_EQ(0, memcmp(decoded, validity, 3));
    EXPECT_FALSE(l2_decode_hex("abc", decoded));
    EXPECT_FALSE(l2_decode_hex("zz", decoded));
}

TEST(L2Format, ForeignOrDamagedValuesAreRejected)
{
    Fingerprint fp;
    std::string_view value, hex;
    const char *bad[] = {
        "",
        "[1,2,3]",
        "{\"fingerprint\":\"00\",\"value\":1}",
        "{\"fingerprint\":\"0000000000000000000000000000000g\",\"value\":1}",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"value\":}",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"value\":1",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"valu\":1}",
        "{\"fingerprint\":\"0000000000000000000000000000000A\",\"value\":1}",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"validity\":\"0q\",\"value\":1}",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"validity\":\"00",
        "{\"fingerprint\":\"00000000000000000000000000000000\",\"validity\":\"00\",\"value\":}",
    };
    for (const char *s : bad)
        EXPECT_FALSE(l2_decode_value(s, fp, hex, value)) << s;
    /* tusk 0.1.0's format: no validity (never current, see the header). */
    EXPECT_TRUE(l2_decode_value("{\"fingerprint\":\"00000000000000000000000000000000\",\"value\":1}", fp,
                                hex, value));
    EXPECT_EQ(value, "1");
    EXPECT_TRUE(hex.empty());
}
