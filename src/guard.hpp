/*
 * guard.hpp: the error boundary between C++ and PostgreSQL.
 *
 * Two rules, both enforced here:
 *  1. No C++ exception reaches a PostgreSQL frame. Every SQL-callable
 *     function runs its body inside tusk::sql_entry(), which catches
 *     everything, lets the C++ frames unwind, and only then reports the
 *     error with ereport() (or re-throws the original PostgreSQL error).
 *  2. No PostgreSQL error longjmps across a live C++ destructor. C++ code
 *     that holds objects with destructors calls PostgreSQL functions that
 *     may raise through tusk::pg_call(), which catches the error with
 *     PG_TRY, copies it, flushes the error state and throws it on as a
 *     tusk::PgError; sql_entry() re-throws it unchanged (same SQLSTATE,
 *     message, detail, position) once the C++ frames are gone. Code that
 *     holds no such object may call PostgreSQL directly.
 *
 * A caught PostgreSQL error is always re-thrown, never swallowed: the
 * (sub)transaction abort that follows releases locks, SPI and GUC state.
 */
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace tusk {

/* A user-facing error raised by C++ code: SQLSTATE, message, optional detail and hint. */
class SqlError : public std::exception {
  public:
    SqlError(int sqlstate, const char *message, const char *detail = nullptr,
             const char *hint = nullptr)
        : sqlstate_(sqlstate)
    {
        copy(message_, message);
        copy(detail_, detail);
        copy(hint_, hint);
    }
    const char *what() const noexcept override { return message_; }
    int sqlstate() const { return sqlstate_; }
    const char *detail() const { return detail_[0] ? detail_ : nullptr; }
    const char *hint() const { return hint_[0] ? hint_ : nullptr; }

  private:
    template <size_t N> static void copy(char (&to)[N], const char *from)
    {
        to[0] = '\0';
        if (from != nullptr) {
            std::strncpy(to, from, N - 1);
            to[N - 1] = '\0';
        }
    }
    int sqlstate_;
    char message_[512];
    char detail_[512];
    char hint_[256];
};

/* A PostgreSQL error caught by pg_call(), carried through C++ frames. */
class PgError : public std::exception {
  public:
    explicit PgError(ErrorData *edata) : edata_(edata) {}
    const char *what() const noexcept override
    {
        return edata_ && edata_->message ? edata_->message : "PostgreSQL error";
    }
    ErrorData *edata() const { return edata_; }

  private:
    ErrorData *edata_; /* palloc'd in the caller's memory context */
};

/*
 * Runs f(), which calls PostgreSQL functions, turning a PostgreSQL error into
 * a PgError. f itself must not hold C++ objects with destructors across those
 * calls (it is the frame the longjmp lands in).
 */
template <typename F> auto pg_call(F &&f) -> decltype(f())
{
    using R = decltype(f());
    if constexpr (std::is_void_v<R>) {
        MemoryContext caller_context = CurrentMemoryContext;
        ErrorData *volatile edata = nullptr;
        /* A C++ exception must not leave PG_TRY early: PG_END_TRY restores the error stack. */
        std::exception_ptr cpp_error;
        PG_TRY();
        {
            try {
                f();
            } catch (...) {
                cpp_error = std::current_exception();
            }
        }
        PG_CATCH();
        {
            MemoryContextSwitchTo(caller_context);
            edata = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (edata != nullptr)
            throw PgError(edata);
        if (cpp_error)
            std::rethrow_exception(cpp_error);
    } else {
        static_assert(std::is_trivially_copyable_v<R>, "pg_call returns plain values only");
        R result{};
        pg_call([&] { result = f(); });
        return result;
    }
}

/*
 * Runs the body of an SQL-callable function. Whatever the body throws is
 * reported as a PostgreSQL ERROR after every C++ frame of the body is gone.
 */
template <typename F> Datum sql_entry(F &&body) noexcept
{
    /* Plain data only below: these survive the catch blocks. */
    ErrorData *pg_error = nullptr;
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char message[512];
    char detail[512];
    char hint[256];
    message[0] = detail[0] = hint[0] = '\0';

    try {
        return body();
    } catch (const PgError &e) {
        pg_error = e.edata();
    } catch (const SqlError &e) {
        sqlstate = e.sqlstate();
        std::strncpy(message, e.what(), sizeof message - 1);
        message[sizeof message - 1] = '\0';
        if (e.detail())
            std::strncpy(detail, e.detail(), sizeof detail - 1), detail[sizeof detail - 1] = '\0';
        if (e.hint())
            std::strncpy(hint, e.hint(), sizeof hint - 1), hint[sizeof hint - 1] = '\0';
    } catch (const std::bad_alloc &) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        std::strncpy(message, "tusk: out of memory", sizeof message);
    } catch (const std::exception &e) {
        std::strncpy(message, e.what(), sizeof message - 1);
        message[sizeof message - 1] = '\0';
    } catch (...) {
        std::strncpy(message, "tusk: unknown C++ exception", sizeof message);
    }

    if (pg_error != nullptr)
        ReThrowError(pg_error);
    ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", message),
                    detail[0] ? errdetail_internal("%s", detail) : 0,
                    hint[0] ? errhint("%s", hint) : 0));
    pg_unreachable();
}

}  // namespace tusk
