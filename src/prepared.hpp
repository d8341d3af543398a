/* prepared.hpp: tusk_query's per-backend plan cache (src/prepared.cpp). */
#pragma once

namespace tusk {

/* tusk.plan_cache_size (from _PG_init). */
void prepared_define_gucs();

}  // namespace tusk
