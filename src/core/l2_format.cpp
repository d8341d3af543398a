/* l2_format.cpp: L2 key and value formats (see l2_format.hpp). */
#include "core/l2_format.hpp"

#include <cstdio>

namespace tusk::core {

namespace {

constexpr std::string_view kHead = "{\"fingerprint\":\"";
constexpr std::string_view kMiddle = "\",\"value\":";
constexpr std::string_view kTail = "}";

void append_escaped_name(std::string &out, std::string_view name)
{
    for (char c : name) {
        if (c == ':')
            out += "%3A";
        else if (c == '%')
            out += "%25";
        else
            out += c;
    }
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool parse_hex64(std::string_view text, uint64_t &out)
{
    out = 0;
    for (char c : text) {
        int v = hex_value(c);
        if (v < 0)
            return false;
        out = (out << 4) | uint64_t(v);
    }
    return true;
}

}  // namespace

std::string l2_scope_prefix(std::string_view redis_prefix, std::string_view database,
                            std::string_view role)
{
    std::string out(redis_prefix);
    append_escaped_name(out, database);
    out += ':';
    append_escaped_name(out, role);
    out += ':';
    return out;
}

std::string l2_match_pattern(std::string_view literal)
{
    std::string out;
    out.reserve(literal.size() + 8);
    for (char c : literal) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
            out += '\\';
        out += c;
    }
    out += '*';
    return out;
}

std::string l2_encode_value(const Fingerprint &fingerprint, std::string_view json)
{
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long) fingerprint.hi,
                  (unsigned long long) fingerprint.lo);
    std::string out;
    out.reserve(kHead.size() + 32 + kMiddle.size() + json.size() + kTail.size());
    out += kHead;
    out.append(hex, 32);
    out += kMiddle;
    out += json;
    out += kTail;
    return out;
}

bool l2_decode_value(std::string_view stored, Fingerprint &fingerprint, std::string_view &json)
{
    size_t fixed = kHead.size() + 32 + kMiddle.size() + kTail.size();
    if (stored.size() <= fixed || stored.substr(0, kHead.size()) != kHead ||
        stored.substr(kHead.size() + 32, kMiddle.size()) != kMiddle ||
        stored.substr(stored.size() - kTail.size()) != kTail)
        return false;
    std::string_view hex = stored.substr(kHead.size(), 32);
    if (!parse_hex64(hex.substr(0, 16), fingerprint.hi) || !parse_hex64(hex.substr(16), fingerprint.lo))
        return false;
    size_t start = kHead.size() + 32 + kMiddle.size();
    json = stored.substr(start, stored.size() - start - kTail.size());
    return true;
}

}  // namespace tusk::core
