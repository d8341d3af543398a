/* Unit tests of the dependency clock: validity records, bumps, and the fill-vs-commit ordering. */
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/dependency_clock.hpp"

using namespace tusk::core;

namespace {

struct ClockBlock {
    std::unique_ptr<unsigned char[]> memory{new unsigned char[DependencyClock::size() + 64]};
    DependencyClock *clock;
    explicit ClockBlock(uint64_t domain)
    {
        void *p = memory.get();
        size_t space = DependencyClock::size() + 64;
        clock = DependencyClock::format(std::align(64, DependencyClock::size(), p, space), domain);
    }
};

std::vector<uint8_t> record(uint64_t domain, uint64_t fill_clock, std::vector<uint32_t> slots, uint16_t flags = 0)
{
    ValidityHeader h;
    h.domain = domain;
    h.fill_clock = fill_clock;
    h.flags = flags;
    h.count = uint16_t(slots.size());
    std::vector<uint8_t> out(validity_size(h.count));
    EXPECT_EQ(encode_validity(h, slots.data(), out.data()), out.size());
    return out;
}

}  // namespace

TEST(DependencyClock, RecordsRoundTrip)
{
    auto r = record(7, 42, {3, 65535, 1}, kValidityUntracked);
    ValidityHeader h;
    const uint8_t *slots;
    ASSERT_TRUE(decode_validity(r.data(), r.size(), h, slots));
    EXPECT_EQ(h.domain, 7u);
    EXPECT_EQ(h.fill_clock, 42u);
    EXPECT_EQ(h.flags, kValidityUntracked);
    ASSERT_EQ(h.count, 3);
    EXPECT_EQ(validity_slot(slots, 0), 3u);
    EXPECT_EQ(validity_slot(slots, 1), 65535u);
    EXPECT_EQ(validity_slot(slots, 2), 1u);
    /* Truncated, padded, foreign: not records. */
    EXPECT_FALSE(decode_validity(r.data(), r.size() - 1, h, slots));
    r.push_back(0);
    EXPECT_FALSE(decode_validity(r.data(), r.size(), h, slots));
    EXPECT_FALSE(decode_validity(nullptr, 0, h, slots));
    uint8_t junk[24] = {1, 2, 3};
    EXPECT_FALSE(decode_validity(junk, sizeof junk, h, slots));
}

TEST(DependencyClock, AStandbyRecordCarriesItsReplayPosition)
{
    ValidityHeader h;
    h.flags = kValidityReplay;
    h.count = 1;
    h.domain = 3;
    h.fill_clock = 4;
    h.replay = 0x1122334455667788ULL;
    uint32_t slot = 9;
    std::vector<uint8_t> out(validity_size(1, kValidityReplay));
    ASSERT_EQ(encode_validity(h, &slot, out.data()), out.size());
    ValidityHeader back;
    const uint8_t *slots;
    ASSERT_TRUE(decode_validity(out.data(), out.size(), back, slots));
    EXPECT_EQ(back.replay, h.replay);
    EXPECT_EQ(validity_slot(slots, 0), 9u);
    EXPECT_FALSE(decode_validity(out.data(), out.size() - 8, back, slots));
    /* More slots than tusk ever writes: not a record (checking it would cost too much). */
    ValidityHeader big;
    big.count = uint16_t(kMaxValiditySlots + 1);
    std::vector<uint32_t> many(big.count, 1);
    std::vector<uint8_t> huge(validity_size(big.count));
    encode_validity(big, many.data(), huge.data());
    EXPECT_FALSE(decode_validity(huge.data(), huge.size(), back, slots));
}

TEST(DependencyClock, SlotsSpreadAndAvoidTheReservedOne)
{
    EXPECT_NE(dependency_slot(1, 2), dependency_slot(1, 3));
    EXPECT_EQ(dependency_slot(5, 16384), dependency_slot(5, 16384));
    for (uint32_t r = 0; r < 100000; r++)
        ASSERT_NE(dependency_slot(1, r), kEverythingSlot);
}

TEST(DependencyClock, ABumpRetiresOnlyValuesThatDependOnItsSlots)
{
    ClockBlock b(99);
    DependencyClock &c = *b.clock;
    uint64_t s = c.sample();
    auto on_a = record(99, s, {10});
    auto on_b = record(99, s, {20});
    auto none = record(99, s, {});
    EXPECT_TRUE(c.is_current(on_a.data(), on_a.size()));
    uint32_t written = 10;
    uint64_t bumped = c.bump(&written, 1);
    EXPECT_GT(bumped, s);
    EXPECT_FALSE(c.is_current(on_a.data(), on_a.size()));
    EXPECT_TRUE(c.is_current(on_b.data(), on_b.size()));
    EXPECT_TRUE(c.is_current(none.data(), none.size()));
    /* Filled after the bump: current again. */
    auto refilled = record(99, c.sample(), {10});
    EXPECT_TRUE(c.is_current(refilled.data(), refilled.size()));
}

TEST(DependencyClock, AnotherDomainIsNeverCurrentUnlessItDependsOnNothing)
{
    ClockBlock b(1);
    auto foreign = record(2, b.clock->sample(), {10});
    auto foreign_none = record(2, b.clock->sample(), {});
    EXPECT_FALSE(b.clock->is_current(foreign.data(), foreign.size()));
    EXPECT_TRUE(b.clock->is_current(foreign_none.data(), foreign_none.size()));
}

TEST(DependencyClock, CountersNeverGoBackwards)
{
    ClockBlock b(1);
    uint32_t slot = 5;
    uint64_t first = b.clock->bump(&slot, 1);
    uint64_t second = b.clock->bump(&slot, 1);
    EXPECT_LT(first, second);
    EXPECT_EQ(b.clock->counter(slot), second);
}

/*
 * The ordering argument, forced: a "writer" publishes its data (commit
 * visible), then bumps; a "reader" samples, then reads the data. Whenever
 * the reader read the old data, its value must be found stale once the
 * writer's bump is done.
 */
TEST(DependencyClock, AFillThatMissedACommitIsNeverCurrentAfterItsBump)
{
    ClockBlock b(1);
    DependencyClock &c = *b.clock;
    constexpr int kRounds = 20000;
    std::atomic<int> data{0};
    std::atomic<int> round{0};
    std::atomic<int> stale_but_current{0};
    std::thread writer([&] {
        for (int i = 1; i <= kRounds; i++) {
            while (round.load() < i) {
            }
            data.store(i);     /* the commit becomes visible */
            uint32_t slot = 7;
            c.bump(&slot, 1);  /* XACT_EVENT_COMMIT */
            round.store(-i);
        }
    });
    for (int i = 1; i <= kRounds; i++) {
        round.store(i);
        uint64_t s = c.sample();
        int seen = data.load();
        auto r = record(1, s, {7});
        while (round.load() != -i) {
        }
        if (seen < i && c.is_current(r.data(), r.size()))
            stale_but_current++;
    }
    writer.join();
    EXPECT_EQ(stale_but_current.load(), 0);
}
