/* l2_format.cpp: L2 key and value formats (see l2_format.hpp). */
#include "core/l2_format.hpp"

#include <cstdio>

namespace tusk::core {

namespace {

constexpr std::string_view kHead = "{\"fingerprint\":\"";
constexpr std::string_view kMiddle = "\",\"value\":";
constexpr std::string_view kValidity = "\",\"validity\":\"";
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

std::string l2_encode_value(const Fingerprint &fingerprint, const uint8_t *validity, size_t validity_length,
                            std::string_view json)
{
    static const char digits[] = "0123456789abcdef";
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long) fingerprint.hi,
                  (unsigned long long) fingerprint.lo);
    std::string out;
    out.reserve(kHead.size() + 32 + kValidity.size() + 2 * validity_length + kMiddle.size() + json.size() +
                kTail.size());
    out += kHead;
    out.append(hex, 32);
    out += kValidity;
    for (size_t i = 0; i < validity_length; i++) {
        out += digits[validity[i] >> 4];
        out += digits[validity[i] & 15];
    }
    out += kMiddle;
    out += json;
    out += kTail;
    return out;
}

bool l2_decode_hex(std::string_view hex, uint8_t *out)
{
    if (hex.size() % 2 != 0)
        return false;
    for (size_t i = 0; i < hex.size(); i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = uint8_t(hi << 4 | lo);
    }
    return true;
}

bool l2_decode_value(std::string_view stored, Fingerprint &fingerprint, std::string_view &validity_hex,
                     std::string_view &json)
{
    size_t fixed = kHead.size() + 32 + kMiddle.size() + kTail.size();
    if (stored.size() <= fixed || stored.substr(0, kHead.size()) != kHead ||
        stored.substr(stored.size() - kTail.size()) != kTail)
        return false;
    std::string_view hex = stored.substr(kHead.size(), 32);
    if (!parse_hex64(hex.substr(0, 16), fingerprint.hi) || !parse_hex64(hex.substr(16), fingerprint.lo))
        return false;
    size_t at = kHead.size() + 32;
    validity_hex = std::string_view();
    if (stored.substr(at, kValidity.size()) == kValidity) {
        size_t start = at + kValidity.size();
        size_t end = start;
        while (end < stored.size() && hex_value(stored[end]) >= 0)
            end++;
        validity_hex = stored.substr(start, end - start);
        at = end; /* kMiddle starts with the quote that closes the validity */
    }
    if (stored.substr(at, kMiddle.size()) != kMiddle)
        return false;
    size_t start = at + kMiddle.size();
    if (stored.size() < start + kTail.size() + 1)
        return false;
    json = stored.substr(start, stored.size() - start - kTail.size());
    return true;
}

}  // namespace tusk::core
