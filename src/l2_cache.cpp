/*
 * l2_cache.cpp: the L2 tier in Redis (key and value formats: core/l2_format.hpp).
 *
 * Per backend: one RedisClient (one connection, opened lazily, re-opened
 * after a failure), whose waits go through latch_wait() so that a query
 * cancel or termination ends a wait at once.
 *
 * Shared state (L2Shared, in shared memory): the circuit breaker that all
 * backends of the server consult before talking to Redis, and the l2
 * counters.
 * Locking rules:
 *   - breaker and down_reported are read and written only under the
 *     spinlock `mutex`, held for a few instructions, never across I/O,
 *     a PostgreSQL call or an ereport.
 *   - counters are atomics (pg_atomic_uint64), no lock.
 *
 * Boundary: the C++ objects (client, strings, replies) live only inside
 * the noexcept function redis_call(); it calls PostgreSQL only through
 * latch_wait(), which never raises, and copies results out with
 * MCXT_ALLOC_NO_OOM, which cannot raise. A cancel is serviced by
 * finish_call() after the C++ frames are gone.
 */
#include "l2_cache.hpp"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include "core/circuit_breaker.hpp"
#include "core/l2_format.hpp"
#include "core/plain_json.hpp"
#include "core/redis_client.hpp"
#include "core/ttl.hpp"
#include "invalidation.hpp"
#include "subtransaction.hpp"
#include "tusk.hpp"

namespace tusk {

namespace {

char *redis_host = nullptr;
int redis_port = 6379;
char *redis_password = nullptr;
int redis_db = 0;
char *redis_prefix = nullptr;
int redis_connect_timeout_ms = 200;
int redis_timeout_ms = 100;

struct L2Shared {
    slock_t mutex;
    core::CircuitBreaker breaker;
    bool down_reported;
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 sets;
    pg_atomic_uint64 errors;
};

L2Shared *shared = nullptr;
core::RedisClient *client = nullptr;  /* backend-local, created on first use */
char wait_error[256];                 /* a PostgreSQL error caught in latch_wait() */
char last_error[256];                 /* why the last call failed, for the log */

using Commands = std::vector<std::vector<std::string>>;
using Replies = std::vector<core::RedisReply>;

enum class Outcome {
    Ok,          /* Redis answered (the answer may still have been unreadable) */
    Failed,      /* down, refused, timed out, protocol garbage */
    Interrupted, /* a cancel or termination arrived while waiting */
    Skipped,     /* L2 off, or the breaker is open */
};

/* Microseconds on a clock that never steps back, the same in every process. */
int64 monotonic_us()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The wait set of the current connection: the latch, postmaster death and
 * the socket. Kept across calls (building one costs several system calls),
 * rebuilt for every new connection.
 */
WaitEventSet *wait_set = nullptr;
WaitEventSet *wait_set_in_construction = nullptr; /* freed by latch_wait() if building it failed */
uint64 wait_set_connection = 0;
int wait_set_socket_pos = -1;

void prepare_wait_set(int fd)
{
    uint64 connection = client->connection_id();
    if (wait_set != nullptr && wait_set_connection == connection)
        return;
    if (wait_set != nullptr)
        FreeWaitEventSet(wait_set);
    wait_set = nullptr;
    wait_set_in_construction = CreateWaitEventSet(TopMemoryContext, 3);
    AddWaitEventToSet(wait_set_in_construction, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    /* As core does: there is no postmaster to watch in single-user mode. */
    if (IsUnderPostmaster)
        AddWaitEventToSet(wait_set_in_construction, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr,
                          nullptr);
    wait_set_socket_pos =
        AddWaitEventToSet(wait_set_in_construction, WL_SOCKET_READABLE, fd, nullptr, nullptr);
    wait_set = wait_set_in_construction;
    wait_set_in_construction = nullptr;
    wait_set_connection = connection;
}

/*
 * The client's WaitFn: a latch wait that returns instead of raising. A cancel
 * or termination request ends it as Interrupted. An ERROR raised by the wait
 * machinery itself (epoll failing, out of file descriptors) holds no lock or
 * buffer: it is caught, its message kept for the log, and the call fails as
 * a Redis failure would, never the SQL call. The interrupt holdoff counters
 * an ERROR resets are restored (the commit callback runs with interrupts held).
 */
core::WaitResult latch_wait(void *, int fd, bool for_write, int timeout_ms)
{
    MemoryContext context = CurrentMemoryContext;
    uint32 interrupt_holdoff = InterruptHoldoffCount;
    uint32 cancel_holdoff = QueryCancelHoldoffCount;
    volatile core::WaitResult result = core::WaitResult::Timeout;
    PG_TRY();
    {
        prepare_wait_set(fd);
        ModifyWaitEvent(wait_set, wait_set_socket_pos,
                        for_write ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE, nullptr);
        int64 deadline = monotonic_us() + int64(timeout_ms) * 1000;
        for (;;) {
            long left_ms = long((deadline - monotonic_us()) / 1000);
            if (left_ms <= 0) {
                result = core::WaitResult::Timeout;
                break;
            }
            WaitEvent event;
            int n = WaitEventSetWait(wait_set, left_ms, &event, 1, PG_WAIT_EXTENSION);
            if (n > 0 && (event.events & WL_LATCH_SET))
                ResetLatch(MyLatch);
            if (QueryCancelPending || ProcDiePending) {
                result = core::WaitResult::Interrupted;
                break;
            }
            if (n > 0 && (event.events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))) {
                result = core::WaitResult::Ready;
                break;
            }
            if (n == 0) {
                result = core::WaitResult::Timeout;
                break;
            }
            /* The latch was set for something else: wait on. */
        }
    }
    PG_CATCH();
    {
        InterruptHoldoffCount = interrupt_holdoff;
        QueryCancelHoldoffCount = cancel_holdoff;
        MemoryContextSwitchTo(context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        strlcpy(wait_error, error->message != nullptr ? error->message : "error while waiting",
                sizeof wait_error);
        FreeErrorData(error);
        if (wait_set_in_construction != nullptr) {
            FreeWaitEventSet(wait_set_in_construction);
            wait_set_in_construction = nullptr;
        }
        /* Whatever failed, do not reuse this wait set. */
        wait_set_connection = 0;
        result = core::WaitResult::Timeout;
    }
    PG_END_TRY();
    return result;
}

void set_last_error(const char *text)
{
    strlcpy(last_error, text, sizeof last_error);
}

/*
 * Builds the commands with make(), runs them as one pipeline and hands the
 * replies to take(), which copies what it needs into plain memory and
 * returns nullptr, or why the answer is unreadable (an error reply, an
 * unexpected type): then *unreadable is set, the connection is kept and the
 * breaker is not told. Every C++ object of a call lives in here.
 */
template <typename Make, typename Take>
Outcome redis_call(Make &&make, Take &&take, bool *unreadable) noexcept
{
    try {
        if (client == nullptr)
            client = new core::RedisClient(latch_wait, nullptr);
        core::RedisConfig config;
        config.host = redis_host != nullptr ? redis_host : "";
        config.port = redis_port;
        config.password = redis_password != nullptr ? redis_password : "";
        config.db = redis_db;
        config.connect_timeout_ms = redis_connect_timeout_ms;
        config.timeout_ms = redis_timeout_ms;
        client->configure(config);

        Commands commands = make();
        Replies replies;
        wait_error[0] = '\0';
        core::RedisStatus status = client->run(commands, replies);
        if (status == core::RedisStatus::Interrupted)
            return Outcome::Interrupted;
        if (status != core::RedisStatus::Ok) {
            set_last_error(wait_error[0] != '\0' ? wait_error : client->last_error().c_str());
            return Outcome::Failed;
        }
        if (const char *why = take(const_cast<const Replies &>(replies))) {
            set_last_error(why);
            *unreadable = true;
        }
        return Outcome::Ok;
    } catch (const std::exception &e) {
        set_last_error(e.what());
    } catch (...) {
        set_last_error("unknown C++ exception");
    }
    if (client != nullptr)
        client->disconnect();
    return Outcome::Failed;
}

/*
 * Books the outcome of a call the breaker allowed: breaker, counters, one
 * log line when L2 goes down and one when it is back. With may_raise, an
 * interrupt that ended the call is serviced (raising the cancel) now that no
 * C++ frame is live; without it (the commit callback) nothing here raises.
 */
void finish_call(Outcome outcome, bool may_raise)
{
    int64 now = monotonic_us();
    bool went_down = false;
    bool came_back = false;
    int64 retry_ms = 0;

    SpinLockAcquire(&shared->mutex);
    if (outcome == Outcome::Ok) {
        came_back = shared->down_reported;
        shared->down_reported = false;
        shared->breaker.record_success();
    } else if (outcome == Outcome::Failed) {
        shared->breaker.record_failure(now);
        went_down = !shared->down_reported;
        shared->down_reported = true;
        retry_ms = (shared->breaker.retry_at() - now) / 1000;
    } else {
        /* Cancelled: says nothing about Redis, but must not leave a trial in flight. */
        shared->breaker.record_abandoned();
    }
    SpinLockRelease(&shared->mutex);

    if (outcome == Outcome::Failed) {
        pg_atomic_fetch_add_u64(&shared->errors, 1);
        ereport(went_down ? LOG : DEBUG1,
                (errmsg("tusk: Redis L2 at %s:%d failed, skipping it for %lld ms: %s", redis_host,
                        redis_port, (long long) retry_ms, last_error),
                 errhidestmt(true)));
    } else if (came_back) {
        ereport(LOG, (errmsg("tusk: Redis L2 at %s:%d is answering again", redis_host, redis_port),
                      errhidestmt(true)));
    }

    if (outcome == Outcome::Interrupted && may_raise)
        CHECK_FOR_INTERRUPTS();
}

/* Asks the breaker, talks to Redis, books the outcome: every L2 call goes through here. */
template <typename Make, typename Take>
Outcome l2_call(Make &&make, Take &&take, bool may_raise)
{
    if (shared == nullptr || redis_host == nullptr || redis_host[0] == '\0')
        return Outcome::Skipped;
    SpinLockAcquire(&shared->mutex);
    bool allowed = shared->breaker.allow(monotonic_us());
    SpinLockRelease(&shared->mutex);
    if (!allowed)
        return Outcome::Skipped;

    bool unreadable = false;
    Outcome outcome = redis_call(make, take, &unreadable);
    if (unreadable) {
        pg_atomic_fetch_add_u64(&shared->errors, 1);
        ereport(DEBUG1, (errmsg("tusk: unreadable answer from Redis L2: %s", last_error),
                         errhidestmt(true)));
    }
    finish_call(outcome, may_raise);
    return unreadable && outcome == Outcome::Ok ? Outcome::Failed : outcome;
}

/* Copies a reply string into plain memory that outlives the C++ frames; never raises. */
char *copy_out(const std::string &s)
{
    char *out = static_cast<char *>(
        MemoryContextAllocExtended(CurrentMemoryContext, s.size() + 1, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE));
    if (out != nullptr) {
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = '\0';
    }
    return out;
}

const char *database_name()
{
    /* A database cannot be renamed while a backend is connected to it. */
    static char name[NAMEDATALEN];
    if (name[0] == '\0')
        strlcpy(name, get_database_name(MyDatabaseId), sizeof name);
    return name;
}

char *scope_key(const char *tail, size_t length)
{
    /* Catalog lookups first: they may raise, so no C++ object may be alive yet. */
    const char *database = database_name();
    const char *role = GetUserNameFromId(GetUserId(), false); /* roles can be renamed: no cache */
    const char *prefix = redis_prefix != nullptr ? redis_prefix : "";
    char *out = nullptr;
    try {
        std::string key = core::l2_scope_prefix(prefix, database, role);
        key.append(tail, length);
        out = copy_out(key);
    } catch (...) {
        out = nullptr;
    }
    if (out == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    return out;
}

/*
 * Builds jsonb from the scanner's events, as jsonb_in's own callbacks do.
 * Strings and keys point into the text being scanned, which outlives the
 * result's construction. Nothing here can raise but palloc running out of
 * memory: numbers are plain (no exponent, bounded length), so numeric_in
 * accepts them, and the scanner bounds nesting and the caller the size, so
 * no jsonb limit is reached. The object holds nothing to destroy.
 */
class JsonbFromPlainJson final : public core::PlainJsonEvents {
  public:
    JsonbValue *result = nullptr;

    void begin_object() override { pushJsonbValue(&state_, WJB_BEGIN_OBJECT, nullptr); }
    void end_object() override { close(WJB_END_OBJECT); }
    void begin_array() override { pushJsonbValue(&state_, WJB_BEGIN_ARRAY, nullptr); }
    void end_array() override { close(WJB_END_ARRAY); }
    void key(std::string_view name) override
    {
        JsonbValue v;
        v.type = jbvString;
        v.val.string.len = int(name.size());
        v.val.string.val = const_cast<char *>(name.data());
        pushJsonbValue(&state_, WJB_KEY, &v);
    }
    void string(std::string_view text, bool top_level) override
    {
        JsonbValue v;
        v.type = jbvString;
        v.val.string.len = int(text.size());
        v.val.string.val = const_cast<char *>(text.data());
        scalar(v, top_level);
    }
    void number(std::string_view text, bool top_level) override
    {
        char digits[core::kMaxPlainNumberLength + 1];
        memcpy(digits, text.data(), text.size());
        digits[text.size()] = '\0';
        JsonbValue v;
        v.type = jbvNumeric;
        v.val.numeric = DatumGetNumeric(
            DirectFunctionCall3(numeric_in, CStringGetDatum(digits), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
        scalar(v, top_level);
    }
    void boolean(bool value, bool top_level) override
    {
        JsonbValue v;
        v.type = jbvBool;
        v.val.boolean = value;
        scalar(v, top_level);
    }
    void null(bool top_level) override
    {
        JsonbValue v;
        v.type = jbvNull;
        scalar(v, top_level);
    }

  private:
    JsonbParseState *state_ = nullptr;

    void close(JsonbIteratorToken token)
    {
        JsonbValue *closed = pushJsonbValue(&state_, token, nullptr);
        if (state_ == nullptr)
            result = closed;
    }

    void scalar(JsonbValue &v, bool top_level)
    {
        if (top_level) {
            /* A document that is one scalar is stored as a one-element "raw scalar" array. */
            JsonbValue array;
            array.type = jbvArray;
            array.val.array.rawScalar = true;
            array.val.array.nElems = 1;
            pushJsonbValue(&state_, WJB_BEGIN_ARRAY, &array);
            pushJsonbValue(&state_, WJB_ELEM, &v);
            close(WJB_END_ARRAY);
            return;
        }
        pushJsonbValue(&state_, state_->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, &v);
    }
};

/* The fast path takes texts up to this size: far from any jsonb size limit. */
constexpr size_t kMaxPlainJsonBytes = 16 * 1024 * 1024;
constexpr int kMaxPlainJsonDepth = 64;

/*
 * jsonb from JSON text that came from Redis, or nullptr when it is not valid
 * in this database (bad encoding, bad JSON, numbers out of range, nesting too
 * deep). Plain JSON, which is what tusk writes, is built directly from the
 * scanner's events. Anything else goes through jsonb_in in an internal
 * subtransaction, so whatever it raises is rolled back and becomes a miss,
 * never a failed call.
 */
Jsonb *parse_stored_json(char *text, size_t length)
{
    if (!pg_verifymbstr(text, int(length), true))
        return nullptr;
    if (length <= kMaxPlainJsonBytes) {
        JsonbFromPlainJson builder;
        core::Scan scanned = core::scan_plain_json(std::string_view(text, length), builder, kMaxPlainJsonDepth);
        if (scanned == core::Scan::Plain && builder.result != nullptr)
            return JsonbValueToJsonb(builder.result);
        if (scanned == core::Scan::Invalid)
            return nullptr;
    }
    Jsonb *result = nullptr;
    bool parsed = false;
    ErrorData *error = in_subtransaction(nullptr, [&result, text]() -> bool {
        result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
        return true;
    }, &parsed);
    if (error != nullptr) {
        FreeErrorData(error);
        return nullptr;
    }
    return result;
}

bool check_redis_prefix(char **newval, void **, GucSource)
{
    if (*newval == nullptr || (*newval)[0] == '\0') {
        GUC_check_errdetail("An empty prefix would let tusk_cache_flush() remove every key of the Redis database.");
        return false;
    }
    return true;
}

}  // namespace

void l2_define_gucs()
{
    DefineCustomStringVariable("tusk.redis_host", "Redis server of the L2 cache (empty turns L2 off).",
                               nullptr, &redis_host, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.redis_port", "TCP port of the L2 Redis server.", nullptr,
                            &redis_port, 6379, 1, 65535, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("tusk.redis_password", "Password for the L2 Redis server (AUTH).",
                               "Visible to superusers only.", &redis_password, "", PGC_SIGHUP,
                               GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.redis_db", "Redis database number of the L2 cache.", nullptr,
                            &redis_db, 0, 0, 1 << 20, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("tusk.redis_prefix", "Prefix of every Redis key tusk writes.",
                               "Servers with the same prefix, database and role names share entries.",
                               &redis_prefix, "tusk:", PGC_SIGHUP, 0, check_redis_prefix, nullptr,
                               nullptr);
    DefineCustomIntVariable("tusk.redis_connect_timeout", "Time limit for connecting to Redis.",
                            nullptr, &redis_connect_timeout_ms, 200, 1, 60000, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("tusk.redis_timeout", "Time limit for one Redis call.", nullptr,
                            &redis_timeout_ms, 100, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
}

void l2_request_shmem()
{
    RequestAddinShmemSpace(MAXALIGN(sizeof(L2Shared)));
}

void l2_startup_shmem()
{
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    shared = static_cast<L2Shared *>(ShmemInitStruct("tusk l2 state", sizeof(L2Shared), &found));
    if (!found) {
        SpinLockInit(&shared->mutex);
        new (&shared->breaker) core::CircuitBreaker();
        shared->down_reported = false;
        pg_atomic_init_u64(&shared->hits, 0);
        pg_atomic_init_u64(&shared->misses, 0);
        pg_atomic_init_u64(&shared->sets, 0);
        pg_atomic_init_u64(&shared->errors, 0);
    }
    LWLockRelease(AddinShmemInitLock);
}

bool l2_enabled()
{
    return shared != nullptr && redis_host != nullptr && redis_host[0] != '\0';
}

char *l2_key_for(const char *user_key, size_t length) { return scope_key(user_key, length); }

char *l2_prefix_for(const char *user_prefix, size_t length) { return scope_key(user_prefix, length); }

char *l2_prefix_of_everything() { return pstrdup(redis_prefix != nullptr ? redis_prefix : ""); }

Jsonb *l2_get(const char *key, const core::Fingerprint *want, int64 now, int64 *expires_at,
             core::Fingerprint *found, uint8_t **validity, size_t *validity_length)
{
    *validity = nullptr;
    *validity_length = 0;
    char *stored = nullptr;
    size_t stored_length = 0;
    long long pttl = -2;
    Outcome outcome = l2_call(
        [key] { return Commands{{"GET", key}, {"PTTL", key}}; },
        [&](const Replies &r) -> const char * {
            if (r[0].type == core::RedisReply::Type::Nil)
                return nullptr;
            if (r[0].type != core::RedisReply::Type::String || r[1].type != core::RedisReply::Type::Integer)
                return "unexpected reply to GET/PTTL (is the key of another type?)";
            stored = copy_out(r[0].str);
            if (stored == nullptr)
                return "out of memory copying a Redis value";
            stored_length = r[0].str.size();
            pttl = r[1].integer;
            return nullptr;
        },
        true);
    if (outcome == Outcome::Skipped || outcome == Outcome::Interrupted)
        return nullptr;
    bool readable = outcome == Outcome::Ok;
    if (readable && (stored == nullptr || pttl == -2)) {
        pg_atomic_fetch_add_u64(&shared->misses, 1);
        return nullptr;
    }

    core::Fingerprint fingerprint;
    std::string_view json, validity_hex;
    Jsonb *value = nullptr;
    if (readable &&
        core::l2_decode_value(std::string_view(stored, stored_length), fingerprint, validity_hex, json)) {
        if (want != nullptr && *want != fingerprint) {
            pg_atomic_fetch_add_u64(&shared->misses, 1);
            return nullptr;
        }
        if (!validity_hex.empty()) {
            auto *bytes = static_cast<uint8_t *>(palloc(validity_hex.size() / 2 + 1));
            if (core::l2_decode_hex(validity_hex, bytes)) {
                *validity = bytes;
                *validity_length = validity_hex.size() / 2;
            } else {
                pfree(bytes);
            }
        }
        char *text = pnstrdup(json.data(), json.size());
        value = parse_stored_json(text, json.size());
        if (value == nullptr)
            pg_atomic_fetch_add_u64(&shared->errors, 1); /* tusk's format, but not valid here */
    } else if (readable) {
        pg_atomic_fetch_add_u64(&shared->errors, 1); /* not written by tusk, or damaged */
    }
    /* Something it read has changed since it was filled (or it cannot show that nothing has). */
    if (value != nullptr && !validity_current(*validity, *validity_length))
        value = nullptr;
    if (value == nullptr) {
        pg_atomic_fetch_add_u64(&shared->misses, 1);
        return nullptr;
    }
    pg_atomic_fetch_add_u64(&shared->hits, 1);
    if (found != nullptr)
        *found = fingerprint;
    if (expires_at != nullptr) {
        /* No expiry (-1) means another program wrote it: do not copy it up (0 = unknown). */
        if (pttl < 0)
            *expires_at = 0;
        else
            *expires_at = core::expiry_time(now, std::min<int64>(pttl, INT64_MAX / 1000) * 1000);
    }
    return value;
}

char *l2_encode(const core::Fingerprint &fingerprint, const uint8_t *validity, size_t validity_length,
                Jsonb *value, size_t *length)
{
    char *json = JsonbToCString(nullptr, &value->root, VARSIZE(value));
    char *out = nullptr;
    try {
        std::string encoded = core::l2_encode_value(fingerprint, validity, validity_length, json);
        out = copy_out(encoded);
        *length = encoded.size();
    } catch (...) {
        out = nullptr;
    }
    if (out == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    return out;
}

bool l2_put_encoded(const char *key, const char *encoded, size_t length, int64 ttl, bool may_raise)
{
    /* At least 1 ms; at most 100 years, which Redis accepts whatever its clock says. */
    int64 ttl_ms = std::min<int64>(std::max<int64>(ttl / 1000, 1), INT64CONST(3153600000000));
    Outcome outcome = l2_call(
        [=] { return Commands{{"SET", key, std::string(encoded, length), "PX", std::to_string(ttl_ms)}}; },
        [](const Replies &r) -> const char * {
            return r[0].type == core::RedisReply::Type::Status ? nullptr : "unexpected reply to SET";
        },
        may_raise);
    if (outcome == Outcome::Ok)
        pg_atomic_fetch_add_u64(&shared->sets, 1);
    return outcome == Outcome::Ok;
}

int l2_put_many(const L2Put *puts, int count)
{
    constexpr int kPerRoundTrip = 256;
    int stored = 0;
    for (int start = 0; start < count; start += kPerRoundTrip) {
        int n = std::min(kPerRoundTrip, count - start);
        Outcome outcome = l2_call(
            [=] {
                Commands c;
                c.reserve(size_t(n));
                for (int i = start; i < start + n; i++) {
                    int64 ttl_ms = std::min<int64>(std::max<int64>(puts[i].ttl / 1000, 1), INT64CONST(3153600000000));
                    c.push_back({"SET", puts[i].key, std::string(puts[i].encoded, puts[i].length), "PX",
                                 std::to_string(ttl_ms)});
                }
                return c;
            },
            [](const Replies &r) -> const char * {
                for (const auto &reply : r)
                    if (reply.type != core::RedisReply::Type::Status)
                        return "unexpected reply to SET";
                return nullptr;
            },
            false);
        if (outcome != Outcome::Ok)
            break;
        stored += n;
        pg_atomic_fetch_add_u64(&shared->sets, uint64(n));
    }
    return stored;
}

int l2_delete(const char *key, bool may_raise)
{
    long long removed = 0;
    Outcome outcome = l2_call(
        [key] { return Commands{{"DEL", key}}; },
        [&](const Replies &r) -> const char * {
            if (r[0].type != core::RedisReply::Type::Integer)
                return "unexpected reply to DEL";
            removed = r[0].integer;
            return nullptr;
        },
        may_raise);
    if (outcome != Outcome::Ok)
        return -1;
    return removed > 0 ? 1 : 0;
}

int64 l2_delete_prefix(const char *prefix)
{
    char *pattern = nullptr;
    try {
        pattern = copy_out(core::l2_match_pattern(prefix));
    } catch (...) {
        pattern = nullptr;
    }
    if (pattern == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

    int64 removed = 0;
    char cursor[32] = "0";
    do {
        /* SCAN one batch; the keys are copied out into plain memory. */
        char **keys = nullptr;
        size_t key_count = 0;
        Outcome outcome = l2_call(
            [&] { return Commands{{"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}}; },
            [&](const Replies &r) -> const char * {
                if (r[0].type != core::RedisReply::Type::Array || r[0].elements.size() != 2 ||
                    r[0].elements[0].type != core::RedisReply::Type::String ||
                    r[0].elements[1].type != core::RedisReply::Type::Array)
                    return "unexpected reply to SCAN";
                const auto &found = r[0].elements[1].elements;
                keys = static_cast<char **>(MemoryContextAllocExtended(
                    CurrentMemoryContext, sizeof(char *) * (found.size() + 1), MCXT_ALLOC_NO_OOM));
                if (keys == nullptr)
                    return "out of memory";
                for (const auto &k : found) {
                    if (k.type != core::RedisReply::Type::String)
                        continue;
                    if ((keys[key_count] = copy_out(k.str)) == nullptr)
                        return "out of memory";
                    key_count++;
                }
                strlcpy(cursor, r[0].elements[0].str.c_str(), sizeof cursor);
                return nullptr;
            },
            true);
        if (outcome != Outcome::Ok)
            return -1;
        if (key_count > 0) {
            long long unlinked = 0;
            outcome = l2_call(
                [&] {
                    Commands c(1);
                    c[0].reserve(key_count + 1);
                    c[0].push_back("UNLINK");
                    for (size_t i = 0; i < key_count; i++)
                        c[0].push_back(keys[i]);
                    return c;
                },
                [&](const Replies &r) -> const char * {
                    if (r[0].type != core::RedisReply::Type::Integer)
                        return "unexpected reply to UNLINK";
                    unlinked = r[0].integer;
                    return nullptr;
                },
                true);
            if (outcome != Outcome::Ok)
                return -1;
            removed += unlinked;
        }
        /* One batch at a time: a flush of millions of keys must not hold them all. */
        for (size_t i = 0; i < key_count; i++)
            pfree(keys[i]);
        if (keys != nullptr)
            pfree(keys);
        CHECK_FOR_INTERRUPTS();
    } while (strcmp(cursor, "0") != 0);
    return removed;
}

void l2_stats(L2Stats &out)
{
    out = L2Stats{};
    if (shared == nullptr)
        return;
    out.hits = pg_atomic_read_u64(&shared->hits);
    out.misses = pg_atomic_read_u64(&shared->misses);
    out.sets = pg_atomic_read_u64(&shared->sets);
    out.errors = pg_atomic_read_u64(&shared->errors);
}

void l2_reset_counters()
{
    if (shared == nullptr)
        return;
    pg_atomic_write_u64(&shared->hits, 0);
    pg_atomic_write_u64(&shared->misses, 0);
    pg_atomic_write_u64(&shared->sets, 0);
    pg_atomic_write_u64(&shared->errors, 0);
}

}  // namespace tusk
