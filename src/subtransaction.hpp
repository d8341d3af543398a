/*
 * subtransaction.hpp: runs a piece of work in an internal subtransaction
 * with its own lock_timeout, turning what it raises into a value instead of
 * an aborted transaction (as PL/pgSQL's EXCEPTION blocks do).
 *
 * Plain C-style code: the body holds no C++ object with a destructor
 * (a PostgreSQL error longjmps out of it). Backend-local.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace tusk {

/*
 * Runs body() in an internal subtransaction, with lock_timeout set to
 * `lock_timeout` (nullptr: as it is). The subtransaction is kept when body() returns true and
 * rolled back when it returns false. An error rolls it back too and is
 * returned (copied, in the caller's memory context; the caller frees or
 * re-throws it); nullptr when there was none. *result is what body()
 * returned (false after an error).
 */
template <typename Body> ErrorData *in_subtransaction(const char *lock_timeout, Body &&body, bool *result)
{
    MemoryContext context = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool kept = false;
    ErrorData *volatile error = nullptr;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
    PG_TRY();
    {
        int nest_level = NewGUCNestLevel();
        if (lock_timeout != nullptr)
            set_config_option("lock_timeout", lock_timeout, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                              false);
        kept = body();
        AtEOXact_GUC(true, nest_level);
        if (kept)
            ReleaseCurrentSubTransaction();
        else
            RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
        kept = false;
    }
    PG_END_TRY();
    *result = kept;
    return error;
}

}  // namespace tusk
