/*
 * l2_format.hpp: how L2 entries look in Redis, free of PostgreSQL headers.
 *
 * Key:   <tusk.redis_prefix><database>:<role>:<user key>
 *        ':' and '%' in the database and role names are written %3A and %25,
 *        so no (database, role) pair can produce another pair's keys; the
 *        user key comes last, as it is. Names, not OIDs: servers that share
 *        names (a primary and its standbys, peers) share entries.
 * Value: JSON text
 *          {"fingerprint":"<32 hex digits>","validity":"<hex>","value":<the rows>}
 *        stored with SET ... PX <ttl>, readable by any other program. The
 *        validity is the value's validity record (dependency_clock.hpp),
 *        in hex. An entry without one (written by tusk 0.1.0) decodes with
 *        an empty validity, which is never current.
 */
#pragma once

#include <string>
#include <string_view>

#include "core/l1_store.hpp"

namespace tusk::core {

/* The key prefix of one (database, role) scope: prefix + escaped names + ':'. */
std::string l2_scope_prefix(std::string_view redis_prefix, std::string_view database,
                            std::string_view role);

/* A SCAN MATCH pattern for every key that starts with `literal` (glob characters escaped). */
std::string l2_match_pattern(std::string_view literal);

std::string l2_encode_value(const Fingerprint &fingerprint, const uint8_t *validity, size_t validity_length,
                            std::string_view json);

/*
 * Splits a stored value; false when it is not in tusk's format (written by
 * something else, or damaged). `json` and `validity_hex` point into `stored`.
 */
bool l2_decode_value(std::string_view stored, Fingerprint &fingerprint, std::string_view &validity_hex,
                     std::string_view &json);

/* Decodes hex (even length, lower case) into out (hex.size() / 2 bytes); false on a bad digit. */
bool l2_decode_hex(std::string_view hex, uint8_t *out);

}  // namespace tusk::core
