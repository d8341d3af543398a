/* sql_args.hpp: argument checks shared by the SQL entry points. */
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
}

namespace tusk {

/* Raises null_value_not_allowed ("<name> must not be NULL") when argument n is NULL. */
inline void require_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
    if (PG_ARGISNULL(n))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
}

}  // namespace tusk
