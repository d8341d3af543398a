/*
 * tusk.cpp: module entry: _PG_init defines the GUCs, registers the
 * transaction callbacks and the ExecutorStart hook that keeps cached queries
 * read-only and, when loaded through shared_preload_libraries,
 * installs the invalidation hooks (ExecutorCheckPerms, ProcessUtility and
 * a transaction callback, invalidation.cpp), and
 * chains the shared-memory hooks (request in shmem_request_hook, set up in
 * shmem_startup_hook, as contrib/pg_stat_statements does) and registers the
 * metrics worker (worker.cpp).
 */
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

#include "benchmark.hpp"
#include "fingerprint.hpp"
#include "invalidation.hpp"
#include "single_flight.hpp"
#include "l1_cache.hpp"
#include "l2_cache.hpp"
#include "l3_cache.hpp"
#include "l3_queue.hpp"
#include "metrics.hpp"
#include "traces.hpp"
#include "pending.hpp"
#include "prepared.hpp"
#include "query_runner.hpp"
#include "tusk.hpp"
#include "worker.hpp"

namespace tusk {

bool tusk_preloaded = false;

namespace {

shmem_request_hook_type previous_shmem_request = nullptr;
shmem_startup_hook_type previous_shmem_startup = nullptr;

void request_shmem()
{
    if (previous_shmem_request)
        previous_shmem_request();
    l1_request_shmem();
    l2_request_shmem();
    l3_request_shmem();
    invalidation_request_shmem();
    l3_queue_request_shmem();
    single_flight_request_shmem();
    metrics_request_shmem();
    traces_request_shmem();
}

void startup_shmem()
{
    if (previous_shmem_startup)
        previous_shmem_startup();
    l1_startup_shmem();
    l2_startup_shmem();
    l3_startup_shmem();
    invalidation_startup_shmem();
    l3_queue_startup_shmem();
    single_flight_startup_shmem();
    metrics_startup_shmem();
    traces_startup_shmem();
}

}  // namespace

}  // namespace tusk

extern "C" void _PG_init(void)
{
    tusk::l1_define_gucs();
    tusk::l2_define_gucs();
    tusk::l3_define_gucs();
    tusk::l3_queue_define_gucs();
    tusk::invalidation_define_gucs();
    tusk::single_flight_define_gucs();
    tusk::fingerprint_define_gucs();
    tusk::metrics_define_gucs();
    tusk::worker_define_gucs();
    tusk::traces_define_gucs();
    tusk::prepared_define_gucs();
    tusk::benchmark_define_gucs();
    MarkGUCPrefixReserved("tusk");
    tusk::pending_register_callbacks();
    tusk::query_runner_install_hooks();
    tusk::invalidation_install_hooks();

    if (!process_shared_preload_libraries_in_progress)
        return;
    tusk::tusk_preloaded = true;
    tusk::previous_shmem_request = shmem_request_hook;
    shmem_request_hook = tusk::request_shmem;
    tusk::previous_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = tusk::startup_shmem;
    tusk::worker_register();
}
