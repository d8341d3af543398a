/*
 * query_runner.hpp: runs a user's query read-only and returns its rows as
 * a jsonb array of objects.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/jsonb.h"
}

namespace tusk {

/* Longest cache key accepted, in bytes. */
constexpr size_t kMaxKeyBytes = 2048; /* fits a btree entry of the L3 table */

/*
 * Runs query (exactly one SELECT, VALUES or TABLE statement) with params
 * (a jsonb array bound to $1..$n, or nullptr) in a read-only context and
 * returns the rows as a jsonb array of objects, in the query's order,
 * allocated in the caller's memory context. Raises PostgreSQL errors
 * directly: call it from a frame that holds no C++ destructors, or
 * through pg_call().
 */
Jsonb *run_query_as_jsonb(const char *query, Jsonb *params);

/* Installs the ExecutorStart hook that keeps cached queries read-only (from _PG_init). */
void query_runner_install_hooks();

}  // namespace tusk
