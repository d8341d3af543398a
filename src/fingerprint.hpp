/*
 * fingerprint.hpp: what produced a cached value, as far as the session is
 * concerned. A value is served only to a call with the same fingerprint.
 *
 * Besides the query text and its params (cache_functions.cpp), the
 * fingerprint holds every setting that can change a query's rows or how
 * they are rendered: search_path, TimeZone, DateStyle, IntervalStyle,
 * standard_conforming_strings, bytea_output, extra_float_digits,
 * lc_monetary, row_security; the session user when it is not the current
 * role (SET ROLE); every custom setting (a name with a dot, such as
 * app.tenant, which row-level security policies read with
 * current_setting()); and the settings tusk.fingerprint_settings names.
 * Backend-local; no shared state.
 */
#pragma once

extern "C" {
#include "postgres.h"
}

#include "core/cache_key.hpp"

namespace tusk {

void fingerprint_define_gucs();

/* Adds the session's settings (see above) to builder. */
void add_session_settings(core::FingerprintBuilder &builder);

}  // namespace tusk
