/*
 * single_flight.hpp: one execution per concurrent miss on this server.
 *
 * When sessions miss the same entry (database, role, key and fingerprint)
 * at once, the first becomes its filler by taking a lock on the entry (an
 * advisory-type heavyweight lock, objsubid 3 in pg_locks, never taken by
 * SQL's pg_advisory_lock functions), and the others wait for that lock,
 * then look the entry up again. Waiting on a real lock gives what a
 * waiter needs: cancel and statement_timeout work, pg_locks and
 * pg_blocking_pids show who waits for whom, a filler that errors, is
 * cancelled or exits releases the lock with its (sub)transaction, and a
 * cycle of fillers waiting for each other (nested calls) is broken by the
 * deadlock detector. A waiter gives up after tusk.fill_wait_timeout, or
 * when the deadlock detector picks it, and runs the query itself. A value
 * the filler could not store (too large for L1 with L2 and L3 off, or
 * invalidated meanwhile) is run again by each waiter.
 *
 * Shared state: the waits counter (an atomic). The locks live in
 * PostgreSQL's lock manager.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "storage/lock.h"
}

#include "core/l1_store.hpp"

namespace tusk {

void single_flight_define_gucs();
void single_flight_request_shmem();
void single_flight_startup_shmem();

/* The fill this backend leads, if any. Plain data. */
struct FlightTicket {
    LOCKTAG tag;
    bool filling = false;
};

enum class FlightRole {
    Filler, /* run the query, store, then flight_land() */
    Waited, /* another session filled it (or the wait was given up): look up again */
    Alone,  /* single flight is off: just run the query */
};

/*
 * Joins the flight for (key hash, fingerprint): becomes its filler, or
 * waits for the filler (counted in waits) and returns Waited.
 */
FlightRole flight_join(uint64 key_hash, const core::Fingerprint &fingerprint, FlightTicket *ticket);

/* The filler is done (stored or not): its waiters go on. */
void flight_land(FlightTicket *ticket);

uint64 flight_waits();
void flight_reset_waits();

}  // namespace tusk
