/*
 * single_flight.cpp: one execution per concurrent miss (see single_flight.hpp).
 *
 * Shared state: FlightShared, the waits counter (pg_atomic_uint64, no
 * lock). Everything else is a heavyweight lock per entry in PostgreSQL's
 * lock manager, taken in the current (sub)transaction: ExclusiveLock by
 * the filler, released as soon as its value is stored (or by the abort);
 * ShareLock by a waiter, released as soon as it is granted.
 *
 * A waiter's wait runs in an internal subtransaction with lock_timeout set
 * to tusk.fill_wait_timeout, so that a timeout or a deadlock is rolled
 * back and answered by running the query, while a cancel or
 * statement_timeout is raised again. Plain C-style code.
 */
#include "single_flight.hpp"

#include "subtransaction.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace tusk {

namespace {

int fill_wait_timeout_ms = 10000;  /* tusk.fill_wait_timeout */
bool single_flight_setting = true; /* tusk.single_flight */

struct FlightShared {
    pg_atomic_uint64 waits;
};
FlightShared *shared = nullptr;

/* objsubid 3: pg_advisory_lock uses 1 (one bigint) and 2 (two ints) only. */
constexpr uint16 kFlightLockKind = 3;

LOCKTAG flight_tag(uint64 key_hash, const core::Fingerprint &fingerprint)
{
    uint64 id = key_hash ^ fingerprint.lo ^ (fingerprint.hi * 0x9e3779b97f4a7c15ULL);
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, uint32(id >> 32), uint32(id), kFlightLockKind);
    return tag;
}

/*
 * Waits until the filler's lock is free (then takes and drops it), up to
 * tusk.fill_wait_timeout. A timeout or a deadlock ends the wait quietly;
 * anything else (a cancel, statement_timeout, termination) is raised.
 */
void wait_for_filler(const LOCKTAG &tag)
{
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%d", fill_wait_timeout_ms > 0 ? fill_wait_timeout_ms : 1);
    bool granted = false;
    ErrorData *error = in_subtransaction(timeout, [&tag]() -> bool {
        (void) LockAcquire(&tag, ShareLock, false, false);
        LockRelease(&tag, ShareLock, false);
        return true;
    }, &granted);
    if (error == nullptr)
        return;
    if (error->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE && error->sqlerrcode != ERRCODE_T_R_DEADLOCK_DETECTED)
        ReThrowError(error);
    FreeErrorData(error);
}

}  // namespace

void single_flight_define_gucs()
{
    DefineCustomBoolVariable("tusk.single_flight",
                             "Concurrent misses of one entry run its query once; the others wait for it.",
                             nullptr, &single_flight_setting, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.fill_wait_timeout",
                            "Longest a miss waits for another session filling the same entry.",
                            "After that it runs the query itself.", &fill_wait_timeout_ms, 10000, 1, INT_MAX,
                            PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

void single_flight_request_shmem()
{
    RequestAddinShmemSpace(MAXALIGN(sizeof(FlightShared)));
}

void single_flight_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    shared = static_cast<FlightShared *>(ShmemInitStruct("tusk single flight", sizeof(FlightShared), &found));
    if (!found)
        pg_atomic_init_u64(&shared->waits, 0);
    LWLockRelease(AddinShmemInitLock);
}

FlightRole flight_join(uint64 key_hash, const core::Fingerprint &fingerprint, FlightTicket *ticket)
{
    ticket->filling = false;
    if (shared == nullptr || !single_flight_setting)
        return FlightRole::Alone;
    ticket->tag = flight_tag(key_hash, fingerprint);
    if (LockAcquire(&ticket->tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL) {
        ticket->filling = true;
        return FlightRole::Filler;
    }
    pg_atomic_fetch_add_u64(&shared->waits, 1);
    wait_for_filler(ticket->tag);
    return FlightRole::Waited;
}

void flight_land(FlightTicket *ticket)
{
    if (!ticket->filling)
        return;
    LockRelease(&ticket->tag, ExclusiveLock, false);
    ticket->filling = false;
}

uint64 flight_waits() { return shared != nullptr ? pg_atomic_read_u64(&shared->waits) : 0; }

void flight_reset_waits()
{
    if (shared != nullptr)
        pg_atomic_write_u64(&shared->waits, 0);
}

}  // namespace tusk
