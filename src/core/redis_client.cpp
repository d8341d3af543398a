/* redis_client.cpp: the L2 tier's Redis client (see redis_client.hpp). */
#include "core/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace tusk::core {

namespace {

int64_t monotonic_ms()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

RedisReply copy_reply(const redisReply *r)
{
    RedisReply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = RedisReply::Type::String;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = RedisReply::Type::Status;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = RedisReply::Type::Error;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = RedisReply::Type::Integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = RedisReply::Type::Array;
            out.elements.reserve(r->elements);
            for (size_t i = 0; i < r->elements; i++)
                out.elements.push_back(copy_reply(r->element[i]));
            break;
        default:
            out.type = RedisReply::Type::Nil;
            break;
    }
    return out;
}

}  // namespace

WaitResult poll_wait(void *, int fd, bool for_write, int timeout_ms)
{
    pollfd p{fd, short(for_write ? POLLOUT : POLLIN), 0};
    for (;;) {
        int rc = poll(&p, 1, timeout_ms);
        if (rc > 0)
            return WaitResult::Ready;
        if (rc == 0)
            return WaitResult::Timeout;
        if (errno != EINTR)
            return WaitResult::Ready; /* let the read or write report the error */
    }
}

RedisClient::RedisClient(WaitFn wait, void *wait_context)
    : wait_(wait != nullptr ? wait : poll_wait), wait_context_(wait_context)
{
}

RedisClient::~RedisClient() { disconnect(); }

void RedisClient::disconnect()
{
    if (context_ != nullptr) {
        redisFree(context_);
        context_ = nullptr;
    }
}

void RedisClient::configure(const RedisConfig &config)
{
    if (config != config_) {
        disconnect();
        config_ = config;
    }
}

RedisStatus RedisClient::fail(RedisStatus status, const std::string &why)
{
    disconnect();
    error_ = why;
    return status;
}

RedisStatus RedisClient::wait_for(bool for_write, int64_t deadline_ms)
{
    int64_t left = deadline_ms - monotonic_ms();
    if (left <= 0)
        return RedisStatus::Timeout;
    switch (wait_(wait_context_, context_->fd, for_write, int(left))) {
        case WaitResult::Ready:
            return RedisStatus::Ok;
        case WaitResult::Interrupted:
            return RedisStatus::Interrupted;
        case WaitResult::Timeout:
        default:
            return RedisStatus::Timeout;
    }
}

RedisStatus RedisClient::connect(int64_t deadline_ms)
{
    if (config_.host.empty())
        return fail(RedisStatus::Failed, "no Redis host configured");
    context_ = redisConnectNonBlock(config_.host.c_str(), config_.port);
    connection_id_++;
    if (context_ == nullptr)
        return fail(RedisStatus::Failed, "out of memory allocating a Redis connection");
    if (context_->err)
        return fail(RedisStatus::Failed, std::string("cannot connect to Redis: ") + context_->errstr);

    /* A non-blocking connect completes when the socket becomes writable. */
    RedisStatus waited = wait_for(true, deadline_ms);
    if (waited != RedisStatus::Ok)
        return fail(waited, waited == RedisStatus::Timeout ? "timed out connecting to Redis"
                                                           : "interrupted connecting to Redis");
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(context_->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0)
        return fail(RedisStatus::Failed,
                    std::string("cannot connect to Redis: ") + std::strerror(so_error ? so_error : errno));
    context_->flags |= REDIS_CONNECTED;

    std::vector<std::vector<std::string>> hello;
    if (!config_.password.empty())
        hello.push_back({"AUTH", config_.password});
    if (config_.db != 0)
        hello.push_back({"SELECT", std::to_string(config_.db)});
    if (hello.empty())
        return RedisStatus::Ok;
    std::vector<RedisReply> replies;
    RedisStatus status = exchange(hello, replies, deadline_ms);
    if (status != RedisStatus::Ok)
        return status;
    for (size_t i = 0; i < replies.size(); i++) {
        if (replies[i].type == RedisReply::Type::Error) {
            /* The reply text is the server's; the password is never part of it. */
            const char *what = hello[i][0] == "AUTH" ? "Redis refused the password: "
                                                     : "Redis refused SELECT: ";
            return fail(RedisStatus::Failed, what + replies[i].str);
        }
    }
    return RedisStatus::Ok;
}

RedisStatus RedisClient::exchange(const std::vector<std::vector<std::string>> &commands,
                                  std::vector<RedisReply> &replies, int64_t deadline_ms)
{
    for (const auto &command : commands) {
        std::vector<const char *> argv;
        std::vector<size_t> argvlen;
        for (const auto &arg : command) {
            argv.push_back(arg.data());
            argvlen.push_back(arg.size());
        }
        if (redisAppendCommandArgv(context_, int(argv.size()), argv.data(), argvlen.data()) != REDIS_OK)
            return fail(RedisStatus::Failed, std::string("Redis: ") + context_->errstr);
    }

    int done = 0;
    while (!done) {
        if (redisBufferWrite(context_, &done) != REDIS_OK)
            return fail(RedisStatus::Failed, std::string("Redis write failed: ") + context_->errstr);
        if (!done) {
            RedisStatus waited = wait_for(true, deadline_ms);
            if (waited != RedisStatus::Ok)
                return fail(waited, waited == RedisStatus::Timeout ? "Redis timed out"
                                                                   : "interrupted waiting for Redis");
        }
    }

    replies.clear();
    while (replies.size() < commands.size()) {
        void *raw = nullptr;
        if (redisGetReplyFromReader(context_, &raw) != REDIS_OK)
            return fail(RedisStatus::Failed, std::string("Redis protocol error: ") + context_->errstr);
        if (raw != nullptr) {
            redisReply *reply = static_cast<redisReply *>(raw);
            try {
                replies.push_back(copy_reply(reply));
            } catch (...) {
                freeReplyObject(reply);
                throw;
            }
            freeReplyObject(reply);
            continue;
        }
        RedisStatus waited = wait_for(false, deadline_ms);
        if (waited != RedisStatus::Ok)
            return fail(waited, waited == RedisStatus::Timeout ? "Redis timed out"
                                                               : "interrupted waiting for Redis");
        if (redisBufferRead(context_) != REDIS_OK)
            return fail(RedisStatus::Failed, std::string("Redis read failed: ") + context_->errstr);
    }
    return RedisStatus::Ok;
}

RedisStatus RedisClient::run(const std::vector<std::vector<std::string>> &commands,
                             std::vector<RedisReply> &replies)
{
    replies.clear();
    error_.clear();
    bool reused = context_ != nullptr;
    if (!reused) {
        RedisStatus status = connect(monotonic_ms() + config_.connect_timeout_ms);
        if (status != RedisStatus::Ok)
            return status;
    }
    if (commands.empty())
        return RedisStatus::Ok;
    int64_t deadline = monotonic_ms() + config_.timeout_ms;
    RedisStatus status = exchange(commands, replies, deadline);
    if (status == RedisStatus::Failed && reused && replies.empty()) {
        /*
         * A kept connection that fails before any reply was most likely closed
         * by the server (restart, idle timeout): connect once more and resend.
         * tusk's commands are safe to resend (a resent DEL may report 0 when
         * the first one was applied but its answer lost), within the same
         * deadline.
         */
        status = connect(monotonic_ms() + config_.connect_timeout_ms);
        if (status != RedisStatus::Ok)
            return status;
        status = exchange(commands, replies, deadline);
    }
    return status;
}

}  // namespace tusk::core
