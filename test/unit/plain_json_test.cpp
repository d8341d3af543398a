/* Unit tests of the plain-JSON scanner (src/core/plain_json.hpp). */
#include <gtest/gtest.h>

#include <string>

#include "core/plain_json.hpp"

using namespace tusk::core;

namespace {

/* Renders the events as a compact trace, so a test states what it expects in one string. */
class Trace : public PlainJsonEvents {
  public:
    std::string out;
    void begin_object() override { out += "{"; }
    void end_object() override { out += "}"; }
    void begin_array() override { out += "["; }
    void end_array() override { out += "]"; }
    void key(std::string_view name) override { out += "k(" + std::string(name) + ")"; }
    void string(std::string_view text, bool top) override { out += (top ? "S(" : "s(") + std::string(text) + ")"; }
    void number(std::string_view text, bool top) override { out += (top ? "N(" : "n(") + std::string(text) + ")"; }
    void boolean(bool value, bool top) override { out += std::string(top ? "B" : "b") + (value ? "t" : "f"); }
    void null(bool top) override { out += top ? "Z" : "z"; }
};

Scan scan(std::string_view text, std::string *trace = nullptr, int max_depth = 64)
{
    Trace t;
    Scan result = scan_plain_json(text, t, max_depth);
    if (trace != nullptr)
        *trace = t.out;
    return result;
}

}  // namespace

TEST(PlainJson, RowsAsJsonbPrintsThem)
{
    std::string trace;
    ASSERT_EQ(scan(R"([{"id": 1, "name": "item 1", "price": 1.25, "on_sale": false}, {"id": 2, "x": null}])", &trace),
              Scan::Plain);
    EXPECT_EQ(trace, "[{k(id)n(1)k(name)s(item 1)k(price)n(1.25)k(on_sale)bf}{k(id)n(2)k(x)z}]");
}

TEST(PlainJson, EmptyContainersAndNesting)
{
    std::string trace;
    ASSERT_EQ(scan(" { \"a\" : [ ] , \"b\" : { } , \"c\" : [[1],[true,\"\"]] } ", &trace), Scan::Plain);
    EXPECT_EQ(trace, "{k(a)[]k(b){}k(c)[[n(1)][bts()]]}");
    ASSERT_EQ(scan("[]", &trace), Scan::Plain);
    EXPECT_EQ(trace, "[]");
    ASSERT_EQ(scan("{}", &trace), Scan::Plain);
    EXPECT_EQ(trace, "{}");
}

TEST(PlainJson, TopLevelScalars)
{
    std::string trace;
    ASSERT_EQ(scan("\"hello\"", &trace), Scan::Plain);
    EXPECT_EQ(trace, "S(hello)");
    ASSERT_EQ(scan(" -0.5 ", &trace), Scan::Plain);
    EXPECT_EQ(trace, "N(-0.5)");
    ASSERT_EQ(scan("true", &trace), Scan::Plain);
    EXPECT_EQ(trace, "Bt");
    ASSERT_EQ(scan("null", &trace), Scan::Plain);
    EXPECT_EQ(trace, "Z");
}

TEST(PlainJson, MultibyteBytesPassThrough)
{
    std::string trace;
    ASSERT_EQ(scan("[\"gr\xc3\xbc\xc3\x9f\"]", &trace), Scan::Plain);
    EXPECT_EQ(trace, "[s(gr\xc3\xbc\xc3\x9f)]");
}

TEST(PlainJson, ValidButNotPlainIsLeftToTheFullParser)
{
    EXPECT_EQ(scan(R"(["a\"b"])"), Scan::NotPlain);
    EXPECT_EQ(scan(R"(["tab\t"])"), Scan::NotPlain);
    EXPECT_EQ(scan(R"({"k\u0041": 1})"), Scan::NotPlain);
    EXPECT_EQ(scan("[1e5]"), Scan::NotPlain);
    EXPECT_EQ(scan("[1.5E-3]"), Scan::NotPlain);
    EXPECT_EQ(scan("[" + std::string(kMaxPlainNumberLength + 1, '7') + "]"), Scan::NotPlain);
    EXPECT_EQ(scan("[" + std::string(kMaxPlainNumberLength, '7') + "]"), Scan::Plain);
    /* Depth: max_depth containers are plain, one more is not. */
    EXPECT_EQ(scan("[[[1]]]", nullptr, 3), Scan::Plain);
    EXPECT_EQ(scan("[[[[1]]]]", nullptr, 3), Scan::NotPlain);
    EXPECT_EQ(scan(std::string(5000, '[') + std::string(5000, ']'), nullptr, 1 << 20), Scan::NotPlain);
}

TEST(PlainJson, InvalidJsonIsInvalid)
{
    for (const char *text : {"", "   ", "[", "]", "[1,]", "[,1]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{,}",
                             "{\"a\":1,}", "{1:2}", "[01]", "[1.]", "[.5]", "[-]", "[+1]", "[tru]", "[nul]",
                             "[\"open]", "[1]x", "[1] [2]", "\"a\" \"b\"", "[\"ctl\x01\"]", "{\"a\":1]",
                             "[1}", "[NaN]", "[Infinity]", "['a']", "[1]]"}) {
        EXPECT_EQ(scan(text), Scan::Invalid) << text;
    }
}
