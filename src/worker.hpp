/*
 * worker.hpp: the tusk metrics worker (src/worker.cpp): its GUCs and its
 * registration at server start.
 */
#pragma once

namespace tusk {

void worker_define_gucs();
/* Called from _PG_init when tusk is in shared_preload_libraries. */
void worker_register();

}  // namespace tusk
