/*
 * invalidation.hpp: automatic invalidation. What each fill read, what each
 * transaction wrote, and the check that a stored value is still current.
 *
 * The shared state is a core::DependencyClock (see its header for the
 * ordering argument) in shared memory. This file is the PostgreSQL side:
 *   - Reads: while a fill runs, every ExecutorStart records the relations
 *     of its range table (tables, views and their base tables, partitions,
 *     materialized views; also inside the functions the query calls), and
 *     a nested tusk call that hits adds that value's dependencies.
 *   - Writes: ExecutorCheckPerms sees every INSERT, UPDATE, DELETE, MERGE
 *     and COPY FROM (also in functions, triggers, rules and foreign-key
 *     actions); a write to a partitioned or inherited table counts for its
 *     descendants. At PRE_COMMIT the transaction's own invalidation
 *     messages add every relation whose definition, privileges, policies
 *     or storage changed (DDL, GRANT/REVOKE, CREATE/ALTER POLICY, ENABLE
 *     ROW LEVEL SECURITY, TRUNCATE, REFRESH MATERIALIZED VIEW); a changed
 *     function or schema counts for the whole database, a changed role for
 *     everything. COMMIT PREPARED counts for the whole database.
 *   - At XACT_EVENT_COMMIT (after the commit is visible to new snapshots,
 *     before COMMIT returns) one bump of the clock raises every written
 *     slot. Atomics only: it cannot fail.
 * Backend-local state (the recorders, the written slots) lives in plain
 * arrays and palloc'd memory of the fill's own context; no locks.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "nodes/plannodes.h"
#include "utils/array.h"
}

#include <cstdint>

namespace tusk {

void invalidation_define_gucs();
void invalidation_request_shmem();
void invalidation_startup_shmem();
void invalidation_install_hooks();

/* tusk.invalidation for this session (and the clock is there). */
bool invalidation_active();

/*
 * What one fill read. begin samples the clock (call it before the query
 * takes its snapshot) and makes the recorder the current one; end makes
 * its parent current again and adds to it what this one read (a fill
 * inside a fill: the outer value depends on the inner one's reads too).
 */
struct FillRecorder {
    FillRecorder *parent;
    uint64_t fill_clock;
    uint32_t *slots; /* palloc'd in the context begin ran in */
    uint32_t count;
    uint32_t capacity;
    uint16_t flags;  /* core::ValidityFlags */
    bool private_data; /* read a temporary table: the value is for this session only */
    bool active;
    bool too_many;   /* read more relations than a record lists: depends on every write to the database */
    uint64_t replay; /* with kValidityReplay: the replay position the fill began at */
    MemoryContext context; /* where slots live: CurrentMemoryContext at begin */
};

void fill_begin(FillRecorder *recorder);
void fill_end(FillRecorder *recorder);
/* The fill failed: its parent is current again, nothing is added to it. Cannot raise. */
void fill_abandon(FillRecorder *recorder);

/* Adds what `from` read to `into` (its slots, flags, privacy, and the older clock). */
void fill_absorb(FillRecorder *into, const FillRecorder *from);

/*
 * Brackets tusk's own statements on its own tables (L3): their writes are
 * no one's dependency and retire nothing. Returns the previous state, to
 * give back to invalidation_own_statements_end().
 */
bool invalidation_own_statements_begin();
void invalidation_own_statements_end(bool previous);

/* Makes recorder current (for a stream's later fetches); returns the one that was. */
FillRecorder *fill_activate(FillRecorder *recorder);

/* From the ExecutorStart hook: the relations a statement of the current fill reads. */
void fill_note_plan(PlannedStmt *plan);

/* A nested hit while a fill runs: the value read depends on what that entry depends on. */
void fill_note_value(const uint8_t *validity, size_t length);

/*
 * The validity record of a finished fill (palloc'd, *length set). nullptr
 * when its value must not be shared (it read a temporary table).
 */
uint8_t *fill_validity(const FillRecorder *recorder, size_t *length);

/* The record of a value set by hand: it depends on exactly these relations (none: nothing). */
uint8_t *explicit_validity(const Oid *relations, int count, size_t *length);

/* Whether a value with this record may be served now. */
bool validity_current(const uint8_t *validity, size_t length);

/* The clock value of a record, its flags and its dependency count (false if it does not decode). */
bool validity_describe(const uint8_t *validity, size_t length, uint64_t *fill_clock, uint16_t *flags,
                       uint32_t *count);

/* tusk_cache_invalidate_relation: every value depending on relation (and its descendants) is retired now. */
void invalidate_relation_now(Oid relation);

/*
 * The removal epoch of a key: bumped by tusk_cache_delete of a key of its
 * bucket (1024 buckets by key hash) and by every tusk_cache_invalidate and
 * tusk_cache_flush. A value computed or read before a bump may be what was
 * removed, so it is not stored (L1 checks under its partition lock, L2
 * again after its SET, L3 at commit and in the L3 writer). Both parts only
 * grow, so their sum is unchanged exactly when neither moved.
 */
uint64_t explicit_epoch(uint64_t key_hash);
/* A delete of the key with this hash bumps its bucket; nullptr (invalidate, flush) bumps every key. */
void bump_explicit_epoch(const uint64_t *key_hash);
/* Whether a bump of `bumped` (nullptr: all) moves the epoch of keys with hash `key_hash`. */
bool epoch_bump_concerns(const uint64_t *bumped, uint64_t key_hash);

/* Relations whose changes make a value stale: how many slots were bumped (for tusk_cache_stats). */
uint64_t invalidation_count();
void invalidation_reset_count();

}  // namespace tusk
