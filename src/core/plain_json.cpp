/* plain_json.cpp: the plain-JSON scanner (see plain_json.hpp). */
#include "core/plain_json.hpp"

#include <cstdint>
#include <cstring>

namespace tusk::core {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

/*
 * The scanner's state over the input. Containers are tracked in a bit stack
 * (1 = object), so depth is bounded by max_depth and by kMaxDepth below.
 */
class Scanner {
  public:
    static constexpr int kMaxDepth = 1024;

    Scanner(std::string_view text, PlainJsonEvents &events, int max_depth)
        : p_(text.data()), end_(text.data() + text.size()), events_(events),
          max_depth_(max_depth < kMaxDepth ? max_depth : kMaxDepth)
    {
    }

    Scan run()
    {
        skip_space();
        if (p_ == end_)
            return Scan::Invalid;
        if (*p_ != '{' && *p_ != '[') {
            Scan scalar = value(true);
            if (scalar != Scan::Plain)
                return scalar;
            skip_space();
            return p_ == end_ ? Scan::Plain : Scan::Invalid;
        }
        /*
         * Containers, without recursion: after each value, either a ',' and
         * the next member or element, or the container's end.
         */
        Scan opened = open(*p_);
        if (opened != Scan::Plain)
            return opened;
        while (depth_ > 0) {
            skip_space();
            if (p_ == end_)
                return Scan::Invalid;
            bool object = in_object();
            char close = object ? '}' : ']';
            if (*p_ == close && expecting_first_) {
                p_++;
                end_container(object);
                continue;
            }
            if (!expecting_first_) {
                if (*p_ == close) {
                    p_++;
                    end_container(object);
                    continue;
                }
                if (*p_ != ',')
                    return Scan::Invalid;
                p_++;
                skip_space();
            }
            expecting_first_ = false;
            if (object) {
                if (p_ == end_ || *p_ != '"')
                    return Scan::Invalid;
                std::string_view name;
                Scan k = string_body(name);
                if (k != Scan::Plain)
                    return k;
                events_.key(name);
                skip_space();
                if (p_ == end_ || *p_ != ':')
                    return Scan::Invalid;
                p_++;
                skip_space();
            }
            if (p_ == end_)
                return Scan::Invalid;
            if (*p_ == '{' || *p_ == '[') {
                Scan nested = open(*p_);
                if (nested != Scan::Plain)
                    return nested;
                continue;
            }
            Scan scalar = value(false);
            if (scalar != Scan::Plain)
                return scalar;
        }
        skip_space();
        return p_ == end_ ? Scan::Plain : Scan::Invalid;
    }

  private:
    void skip_space()
    {
        while (p_ != end_ && is_space(*p_))
            p_++;
    }

    bool in_object() const { return (kinds_[(depth_ - 1) / 64] >> ((depth_ - 1) % 64)) & 1; }

    Scan open(char c)
    {
        if (depth_ >= max_depth_)
            return Scan::NotPlain;
        bool object = c == '{';
        uint64_t bit = uint64_t(1) << (depth_ % 64);
        if (object)
            kinds_[depth_ / 64] |= bit;
        else
            kinds_[depth_ / 64] &= ~bit;
        depth_++;
        p_++;
        expecting_first_ = true;
        if (object)
            events_.begin_object();
        else
            events_.begin_array();
        return Scan::Plain;
    }

    void end_container(bool object)
    {
        depth_--;
        expecting_first_ = false;
        if (object)
            events_.end_object();
        else
            events_.end_array();
    }

    /* At an opening quote: the string's bytes, up to the closing quote. */
    Scan string_body(std::string_view &out)
    {
        const char *start = ++p_;
        const void *quote = std::memchr(start, '"', size_t(end_ - start));
        if (quote == nullptr)
            return Scan::Invalid;
        const char *stop = static_cast<const char *>(quote);
        for (const char *q = start; q != stop; q++) {
            unsigned char c = static_cast<unsigned char>(*q);
            if (c == '\\')
                return Scan::NotPlain; /* an escape, or an escaped quote before `stop` */
            if (c < 0x20)
                return Scan::Invalid;
        }
        out = std::string_view(start, size_t(stop - start));
        p_ = stop + 1;
        return Scan::Plain;
    }

    Scan literal(std::string_view word)
    {
        if (size_t(end_ - p_) < word.size() || std::memcmp(p_, word.data(), word.size()) != 0)
            return Scan::Invalid;
        p_ += word.size();
        return Scan::Plain;
    }

    Scan number_token(std::string_view &out)
    {
        const char *start = p_;
        if (p_ != end_ && *p_ == '-')
            p_++;
        if (p_ == end_ || !is_digit(*p_))
            return Scan::Invalid;
        if (*p_ == '0') {
            p_++;
        } else {
            while (p_ != end_ && is_digit(*p_))
                p_++;
        }
        if (p_ != end_ && *p_ == '.') {
            p_++;
            if (p_ == end_ || !is_digit(*p_))
                return Scan::Invalid;
            while (p_ != end_ && is_digit(*p_))
                p_++;
        }
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E'))
            return Scan::NotPlain;
        /* A number runs into the next token only through JSON's separators. */
        if (p_ != end_ && !is_space(*p_) && *p_ != ',' && *p_ != ']' && *p_ != '}')
            return Scan::Invalid;
        out = std::string_view(start, size_t(p_ - start));
        return out.size() <= kMaxPlainNumberLength ? Scan::Plain : Scan::NotPlain;
    }

    Scan value(bool top_level)
    {
        Scan result;
        switch (*p_) {
            case '"': {
                std::string_view text;
                result = string_body(text);
                if (result == Scan::Plain)
                    events_.string(text, top_level);
                return result;
            }
            case 't':
                result = literal("true");
                if (result == Scan::Plain)
                    events_.boolean(true, top_level);
                return result;
            case 'f':
                result = literal("false");
                if (result == Scan::Plain)
                    events_.boolean(false, top_level);
                return result;
            case 'n':
                result = literal("null");
                if (result == Scan::Plain)
                    events_.null(top_level);
                return result;
            default: {
                std::string_view text;
                result = number_token(text);
                if (result == Scan::Plain)
                    events_.number(text, top_level);
                return result;
            }
        }
    }

    const char *p_;
    const char *end_;
    PlainJsonEvents &events_;
    int max_depth_;
    int depth_ = 0;
    bool expecting_first_ = false;
    uint64_t kinds_[kMaxDepth / 64] = {};
};

}  // namespace

Scan scan_plain_json(std::string_view text, PlainJsonEvents &events, int max_depth)
{
    return Scanner(text, events, max_depth).run();
}

}  // namespace tusk::core
