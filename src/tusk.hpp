/* tusk.hpp: module-wide state set up by _PG_init (src/tusk.cpp). */
#pragma once

namespace tusk {

/* True when tusk was loaded through shared_preload_libraries. */
extern bool tusk_preloaded;

}  // namespace tusk
