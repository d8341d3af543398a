/*
 * redis_client.hpp: a small Redis client over hiredis 0.14 for the L2 tier.
 *
 * The socket is non-blocking and every wait for it goes through a WaitFn the
 * caller provides, with the time left before the deadline. Inside PostgreSQL
 * that wait also watches the latch, so a query cancel interrupts a call to a
 * hung server at once: the wait returns Interrupted, the client drops the
 * connection (its protocol state is unknown) and returns, and the caller
 * services the interrupt after the C++ frames are gone. No call blocks past
 * its deadline: connect_timeout_ms for a connect, timeout_ms for a command
 * or pipeline.
 *
 * hiredis objects never outlive a call: every reply is copied into a Reply
 * and freed at once. Any transport or protocol failure closes the
 * connection; the next call opens a new one.
 * Backend-local (one client per process); no locks. Free of PostgreSQL headers.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct redisContext;

namespace tusk::core {

enum class WaitResult { Ready, Timeout, Interrupted };

/* Waits until fd is readable (for_write false) or writable; must not throw or longjmp. */
using WaitFn = WaitResult (*)(void *context, int fd, bool for_write, int timeout_ms);

/* A WaitFn built on poll(2). */
WaitResult poll_wait(void *context, int fd, bool for_write, int timeout_ms);

struct RedisConfig {
    std::string host;
    int port = 6379;
    std::string password;
    int db = 0;
    int connect_timeout_ms = 1000;
    int timeout_ms = 100;

    bool operator==(const RedisConfig &o) const
    {
        return host == o.host && port == o.port && password == o.password && db == o.db &&
               connect_timeout_ms == o.connect_timeout_ms && timeout_ms == o.timeout_ms;
    }
    bool operator!=(const RedisConfig &o) const { return !(*this == o); }
};

struct RedisReply {
    enum class Type { String, Status, Integer, Nil, Array, Error };
    Type type = Type::Nil;
    std::string str; /* String, Status, Error */
    long long integer = 0;
    std::vector<RedisReply> elements;
};

enum class RedisStatus {
    Ok,          /* every reply arrived (a reply may still be an Error reply) */
    Failed,      /* connect, transport, protocol or authentication failure */
    Timeout,     /* the deadline passed */
    Interrupted, /* the WaitFn reported an interrupt */
};

class RedisClient {
  public:
    explicit RedisClient(WaitFn wait = poll_wait, void *wait_context = nullptr);
    ~RedisClient();
    RedisClient(const RedisClient &) = delete;
    RedisClient &operator=(const RedisClient &) = delete;

    /* Uses this configuration from the next call on (reconnecting if it changed). */
    void configure(const RedisConfig &config);
    const RedisConfig &config() const { return config_; }

    bool connected() const { return context_ != nullptr; }
    /* Changes with every new connection (a new socket may reuse an old fd number). */
    uint64_t connection_id() const { return connection_id_; }
    void disconnect();

    /*
     * Sends the commands as one pipeline and reads one reply per command.
     * Connects first if needed; if a kept connection fails before any reply
     * (the server closed it), connects once more and resends: the commands
     * must be idempotent. On anything but Ok the connection is closed and
     * last_error() says why (never containing the password).
     */
    RedisStatus run(const std::vector<std::vector<std::string>> &commands,
                    std::vector<RedisReply> &replies);

    const std::string &last_error() const { return error_; }

  private:
    RedisStatus connect(int64_t deadline_ms);
    RedisStatus exchange(const std::vector<std::vector<std::string>> &commands,
                         std::vector<RedisReply> &replies, int64_t deadline_ms);
    RedisStatus wait_for(bool for_write, int64_t deadline_ms);
    RedisStatus fail(RedisStatus status, const std::string &why);

    WaitFn wait_;
    void *wait_context_;
    RedisConfig config_;
    redisContext *context_ = nullptr;
    uint64_t connection_id_ = 0;
    std::string error_;
};

}  // namespace tusk::core
