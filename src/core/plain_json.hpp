/*
 * plain_json.hpp: a one-pass scanner for "plain" JSON, free of PostgreSQL
 * headers.
 *
 * An L2 hit turns JSON text from Redis back into jsonb. PostgreSQL 15's
 * parser appends every character of every string to a buffer one call at a
 * time, which is most of an L2 hit's own cost for string-heavy values. The
 * JSON that tusk writes (jsonb's text output) is nearly always "plain":
 *
 *   - strings without backslash escapes (the bytes between the quotes are
 *     the string, passed on as a view into the input, never copied);
 *   - numbers without an exponent, at most kMaxPlainNumberLength bytes
 *     (jsonb's numeric output never uses an exponent);
 *   - nesting at most `max_depth` deep.
 *
 * scan_plain_json() reports such a document as events and returns
 * Scan::Plain. Anything else returns Scan::NotPlain (escapes, exponents,
 * long numbers, deep nesting: valid JSON the caller hands to PostgreSQL's
 * parser instead) or Scan::Invalid (not JSON at all); the events already
 * delivered are then to be discarded. Whitespace is JSON's four characters.
 * Bytes >= 0x80 are passed through: the caller checks the encoding first.
 */
#pragma once

#include <cstddef>
#include <string_view>

namespace tusk::core {

/* Longer numbers, or numbers with an exponent, are left to the full parser. */
constexpr size_t kMaxPlainNumberLength = 1000;

class PlainJsonEvents {
  public:
    virtual ~PlainJsonEvents() = default;
    virtual void begin_object() = 0;
    virtual void end_object() = 0;
    virtual void begin_array() = 0;
    virtual void end_array() = 0;
    virtual void key(std::string_view name) = 0;
    /* Scalars; `top_level` when the whole document is this one scalar. */
    virtual void string(std::string_view text, bool top_level) = 0;
    virtual void number(std::string_view text, bool top_level) = 0;
    virtual void boolean(bool value, bool top_level) = 0;
    virtual void null(bool top_level) = 0;
};

enum class Scan { Plain, NotPlain, Invalid };

Scan scan_plain_json(std::string_view text, PlainJsonEvents &events, int max_depth);

}  // namespace tusk::core
