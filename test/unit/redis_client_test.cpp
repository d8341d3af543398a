/*
 * Tests of the L2 Redis client (src/core/redis_client.hpp) against the
 * throwaway Redis that make test starts (TUSK_TEST_REDIS_PORT), and against
 * fake servers on loopback that refuse, hang or answer garbage.
 */
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/redis_client.hpp"

using tusk::core::RedisClient;
using tusk::core::RedisConfig;
using tusk::core::RedisReply;
using tusk::core::RedisStatus;
using tusk::core::WaitResult;
using Clock = std::chrono::steady_clock;

namespace {

int redis_port()
{
    const char *port = std::getenv("TUSK_TEST_REDIS_PORT");
    return port != nullptr ? std::atoi(port) : 0;
}

#define REQUIRE_REDIS()                                                                   \
    do {                                                                                  \
        if (redis_port() == 0)                                                            \
            GTEST_SKIP() << "TUSK_TEST_REDIS_PORT is not set (make test sets it)";         \
    } while (0)

RedisConfig config_for(int port, int timeout_ms = 500)
{
    RedisConfig c;
    c.host = "127.0.0.1";
    c.port = port;
    c.connect_timeout_ms = 500;
    c.timeout_ms = timeout_ms;
    return c;
}

std::string unique(const std::string &name)
{
    return "tusk-unit:" + std::to_string(getpid()) + ":" + name;
}

/* A listening loopback socket; the port it got. Never accepts unless asked to. */
struct FakeServer {
    int fd = -1;
    int port = 0;
    FakeServer()
    {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
        listen(fd, 8);
        socklen_t len = sizeof addr;
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
        port = ntohs(addr.sin_port);
    }
    ~FakeServer() { close(fd); }
};

/* A port nothing listens on. */
int closed_port()
{
    FakeServer s;
    int port = s.port;
    return port; /* closed when s goes */
}

long elapsed_ms(Clock::time_point since)
{
    return long(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

}  // namespace

TEST(RedisClient, SetGetTtlAndDeleteInOnePipeline)
{
    REQUIRE_REDIS();
    RedisClient client;
    client.configure(config_for(redis_port()));
    std::string key = unique("roundtrip");
    std::string value = std::string("{\"a\": 1, \"bin\": \"") + std::string(3, '\0') + "\"}";
    std::vector<RedisReply> replies;
    ASSERT_EQ(client.run({{"SET", key, value, "PX", "60000"}, {"GET", key}, {"PTTL", key}}, replies),
              RedisStatus::Ok)
        << client.last_error();
    ASSERT_EQ(replies.size(), 3u);
    EXPECT_EQ(replies[0].type, RedisReply::Type::Status);
    EXPECT_EQ(replies[0].str, "OK");
    EXPECT_EQ(replies[1].type, RedisReply::Type::String);
    EXPECT_EQ(replies[1].str, value) << "binary-safe";
    EXPECT_EQ(replies[2].type, RedisReply::Type::Integer);
    EXPECT_GT(replies[2].integer, 50000);
    EXPECT_LE(replies[2].integer, 60000);

    ASSERT_EQ(client.run({{"DEL", key}, {"GET", key}}, replies), RedisStatus::Ok);
    EXPECT_EQ(replies[0].integer, 1);
    EXPECT_EQ(replies[1].type, RedisReply::Type::Nil);
    EXPECT_TRUE(client.connected()) << "the connection is kept between calls";
}

TEST(RedisClient, ErrorReplyKeepsTheConnection)
{
    REQUIRE_REDIS();
    RedisClient client;
    client.configure(config_for(redis_port()));
    std::string key = unique("not-a-number");
    std::vector<RedisReply> replies;
    ASSERT_EQ(client.run({{"SET", key, "x"}, {"INCR", key}, {"DEL", key}}, replies), RedisStatus::Ok);
    EXPECT_EQ(replies[1].type, RedisReply::Type::Error);
    EXPECT_NE(replies[1].str.find("not an integer"), std::string::npos) << replies[1].str;
    EXPECT_EQ(replies[2].integer, 1);
    EXPECT_TRUE(client.connected());
}

TEST(RedisClient, LargeValuesCrossManySocketBuffers)
{
    REQUIRE_REDIS();
    RedisClient client;
    client.configure(config_for(redis_port(), 5000));
    std::string key = unique("large");
    std::string value(8 * 1024 * 1024, 'v');
    value[12345] = 'w';
    std::vector<RedisReply> replies;
    ASSERT_EQ(client.run({{"SET", key, value, "PX", "60000"}, {"GET", key}, {"DEL", key}}, replies),
              RedisStatus::Ok)
        << client.last_error();
    EXPECT_EQ(replies[1].str, value);
}

TEST(RedisClient, SelectsTheConfiguredDatabase)
{
    REQUIRE_REDIS();
    RedisClient db1;
    RedisConfig c = config_for(redis_port());
    c.db = 1;
    db1.configure(c);
    RedisClient db0;
    db0.configure(config_for(redis_port()));
    std::string key = unique("db");
    std::vector<RedisReply> replies;
    ASSERT_EQ(db1.run({{"SET", key, "in db 1", "PX", "60000"}}, replies), RedisStatus::Ok)
        << db1.last_error();
    ASSERT_EQ(db0.run({{"GET", key}}, replies), RedisStatus::Ok);
    EXPECT_EQ(replies[0].type, RedisReply::Type::Nil);
    ASSERT_EQ(db1.run({{"GET", key}, {"DEL", key}}, replies), RedisStatus::Ok);
    EXPECT_EQ(replies[0].str, "in db 1");
}

TEST(RedisClient, RefusedPasswordFailsWithoutShowingIt)
{
    REQUIRE_REDIS();
    RedisClient client;
    RedisConfig c = config_for(redis_port());
    c.password = "s3cret-Passw0rd";
    client.configure(c);
    std::vector<RedisReply> replies;
    EXPECT_EQ(client.run({{"PING"}}, replies), RedisStatus::Failed);
    EXPECT_FALSE(client.connected());
    EXPECT_NE(client.last_error().find("password"), std::string::npos) << client.last_error();
    EXPECT_EQ(client.last_error().find("s3cret-Passw0rd"), std::string::npos) << client.last_error();
}

TEST(RedisClient, RefusedConnectionFailsFast)
{
    RedisClient client;
    client.configure(config_for(closed_port()));
    auto start = Clock::now();
    std::vector<RedisReply> replies;
    EXPECT_EQ(client.run({{"PING"}}, replies), RedisStatus::Failed);
    EXPECT_LT(elapsed_ms(start), 400);
    EXPECT_FALSE(client.connected());
    EXPECT_NE(client.last_error().find("connect"), std::string::npos) << client.last_error();
}

TEST(RedisClient, HungServerTimesOutAtTheDeadline)
{
    FakeServer hung; /* accepts into its backlog, never answers */
    RedisClient client;
    client.configure(config_for(hung.port, 150));
    for (int attempt = 0; attempt < 3; attempt++) {
        auto start = Clock::now();
        std::vector<RedisReply> replies;
        EXPECT_EQ(client.run({{"GET", "k"}}, replies), RedisStatus::Timeout);
        long took = elapsed_ms(start);
        EXPECT_GE(took, 140);
        EXPECT_LT(took, 1000);
        EXPECT_FALSE(client.connected()) << "a timed-out connection is dropped";
    }
}

TEST(RedisClient, GarbageAnswerIsAProtocolFailure)
{
    FakeServer server;
    std::atomic<bool> stop{false};
    std::thread answer([&] {
        int conn = accept(server.fd, nullptr, nullptr);
        if (conn < 0)
            return;
        const char garbage[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
        ssize_t ignored = write(conn, garbage, sizeof garbage - 1);
        (void) ignored;
        while (!stop)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        close(conn);
    });
    RedisClient client;
    client.configure(config_for(server.port, 1000));
    std::vector<RedisReply> replies;
    auto start = Clock::now();
    EXPECT_EQ(client.run({{"GET", "k"}}, replies), RedisStatus::Failed);
    EXPECT_LT(elapsed_ms(start), 900) << "a protocol error is not a timeout";
    EXPECT_NE(client.last_error().find("protocol"), std::string::npos) << client.last_error();
    EXPECT_FALSE(client.connected());
    stop = true;
    answer.join();
}

TEST(RedisClient, InterruptedWaitReturnsAtOnce)
{
    FakeServer hung;
    auto interrupt = [](void *, int, bool, int) { return WaitResult::Interrupted; };
    RedisClient client(interrupt, nullptr);
    client.configure(config_for(hung.port, 5000));
    auto start = Clock::now();
    std::vector<RedisReply> replies;
    EXPECT_EQ(client.run({{"GET", "k"}}, replies), RedisStatus::Interrupted);
    EXPECT_LT(elapsed_ms(start), 500);
    EXPECT_FALSE(client.connected());
}

TEST(RedisClient, ReconnectsAfterAFailure)
{
    REQUIRE_REDIS();
    RedisClient client;
    client.configure(config_for(closed_port()));
    std::vector<RedisReply> replies;
    EXPECT_EQ(client.run({{"PING"}}, replies), RedisStatus::Failed);
    client.configure(config_for(redis_port()));
    ASSERT_EQ(client.run({{"PING"}}, replies), RedisStatus::Ok) << client.last_error();
    EXPECT_EQ(replies[0].str, "PONG");
}

TEST(RedisClient, NoHostIsAFailureNotAConnectAttempt)
{
    RedisClient client;
    std::vector<RedisReply> replies;
    EXPECT_EQ(client.run({{"PING"}}, replies), RedisStatus::Failed);
    EXPECT_NE(client.last_error().find("no Redis host"), std::string::npos);
}

TEST(RedisClient, ResendsOnceWhenTheKeptConnectionWasClosedByTheServer)
{
    REQUIRE_REDIS();
    RedisClient client;
    client.configure(config_for(redis_port()));
    std::vector<RedisReply> replies;
    ASSERT_EQ(client.run({{"CLIENT", "ID"}}, replies), RedisStatus::Ok);
    ASSERT_EQ(replies[0].type, RedisReply::Type::Integer);
    std::string id = std::to_string(replies[0].integer);

    RedisClient killer;
    killer.configure(config_for(redis_port()));
    ASSERT_EQ(killer.run({{"CLIENT", "KILL", "ID", id}}, replies), RedisStatus::Ok);
    ASSERT_EQ(replies[0].integer, 1) << "the first client's connection was closed";

    std::string key = unique("after-kill");
    ASSERT_EQ(client.run({{"SET", key, "v", "PX", "60000"}, {"GET", key}, {"DEL", key}}, replies),
              RedisStatus::Ok)
        << client.last_error();
    EXPECT_EQ(replies[1].str, "v");
}
