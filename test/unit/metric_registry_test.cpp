/* Unit tests of the shared metric table (src/core/metric_registry.hpp). */
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/metric_registry.hpp"

using namespace tusk::core;

namespace {

/* A registry over a private, aligned block, as the server lays it over shared memory. */
class Block {
  public:
    explicit Block(uint32_t capacity)
        : bytes_(MetricRegistry::bytes_for(capacity)),
          memory_(static_cast<char *>(::operator new(bytes_, std::align_val_t(64))))
    {
        std::memset(memory_, 0xA5, bytes_); /* garbage, as fresh shared memory may hold */
        registry = MetricRegistry::create(memory_, capacity);
    }
    ~Block() { ::operator delete(memory_, std::align_val_t(64)); }
    MetricRegistry *registry;

  private:
    size_t bytes_;
    char *memory_;
};

MetricSlot *get_or_create(MetricRegistry &registry, std::mutex &lock, const std::string &name, MetricKind kind)
{
    if (MetricSlot *slot = registry.find(name))
        return slot;
    std::lock_guard<std::mutex> guard(lock);
    MetricRegistry::Outcome outcome;
    return registry.register_locked(name, kind, outcome);
}

}  // namespace

TEST(MetricRegistry, NamesFollowPrometheusSyntax)
{
    for (const char *ok : {"a", "cache_l1_hits", "requests_total", "_x9", "A_B"})
        EXPECT_TRUE(valid_metric_name(ok)) << ok;
    for (const char *bad : {"", "9lives", "has space", "dash-name", "dot.name", "ünïcode", "semi;colon", "colon:name"})
        EXPECT_FALSE(valid_metric_name(bad)) << bad;
    EXPECT_TRUE(valid_metric_name(std::string(kMaxMetricNameLength, 'n')));
    EXPECT_FALSE(valid_metric_name(std::string(kMaxMetricNameLength + 1, 'n')));
}

TEST(MetricRegistry, RegistersOnceAndFindsByName)
{
    Block block(8);
    MetricRegistry &r = *block.registry;
    EXPECT_EQ(r.find("latency"), nullptr);
    MetricRegistry::Outcome outcome;
    MetricSlot *created = r.register_locked("latency", MetricKind::Histogram, outcome);
    ASSERT_NE(created, nullptr);
    EXPECT_EQ(outcome, MetricRegistry::Outcome::Created);
    EXPECT_EQ(created->name_view(), "latency");
    EXPECT_EQ(created->kind, MetricKind::Histogram);
    EXPECT_EQ(r.find("latency"), created);
    EXPECT_EQ(r.register_locked("latency", MetricKind::Counter, outcome), created);
    EXPECT_EQ(outcome, MetricRegistry::Outcome::Found);
    EXPECT_EQ(created->kind, MetricKind::Histogram); /* the first kind stays */
    EXPECT_EQ(r.used(), 1u);
    EXPECT_EQ(r.find("latenc"), nullptr);
    EXPECT_EQ(r.find("latency2"), nullptr);
}

TEST(MetricRegistry, FullWhenEverySlotIsTaken)
{
    Block block(5);
    MetricRegistry &r = *block.registry;
    MetricRegistry::Outcome outcome;
    std::vector<MetricSlot *> slots;
    for (int i = 0; i < 5; i++) {
        slots.push_back(r.register_locked("m" + std::to_string(i), MetricKind::Counter, outcome));
        ASSERT_EQ(outcome, MetricRegistry::Outcome::Created);
    }
    EXPECT_EQ(r.register_locked("one_more", MetricKind::Counter, outcome), nullptr);
    EXPECT_EQ(outcome, MetricRegistry::Outcome::Full);
    /* Every name is still found (probes wrap around a full table), an absent one is not. */
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(r.find("m" + std::to_string(i)), slots[i]);
    EXPECT_EQ(r.find("absent"), nullptr);
    EXPECT_EQ(r.register_locked("m3", MetricKind::Counter, outcome), slots[3]);
    EXPECT_EQ(outcome, MetricRegistry::Outcome::Found);
}

TEST(MetricRegistry, CountersAddAndGaugesSet)
{
    Block block(4);
    MetricRegistry &r = *block.registry;
    MetricRegistry::Outcome outcome;
    MetricSlot &counter = *r.register_locked("c", MetricKind::Counter, outcome);
    MetricSlot &gauge = *r.register_locked("g", MetricKind::Gauge, outcome);
    metric_add(counter, 1, 10);
    metric_add(counter, 2.5, 5);
    EXPECT_DOUBLE_EQ(counter.current_value(), 3.5);
    EXPECT_EQ(counter.cells.count.load(), 2u);
    EXPECT_EQ(counter.cells.updated_at.load(), 10); /* never moves back */
    metric_set(gauge, 7, 1);
    metric_set(gauge, -3, 2);
    EXPECT_DOUBLE_EQ(gauge.current_value(), -3);
    metric_reset(counter);
    EXPECT_DOUBLE_EQ(counter.current_value(), 0);
    EXPECT_EQ(counter.cells.count.load(), 0u);
    EXPECT_EQ(r.find("c"), &counter); /* a reset keeps the name */
}

TEST(MetricRegistry, ConcurrentRegistrationAndRecording)
{
    Block block(64);
    MetricRegistry &r = *block.registry;
    std::mutex lock;
    constexpr int kThreads = 4;
    constexpr int kPerThread = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&] {
            for (int i = 0; i < kPerThread; i++) {
                std::string name = "metric_" + std::to_string(i % 40);
                MetricSlot *slot = get_or_create(r, lock, name, MetricKind::Counter);
                ASSERT_NE(slot, nullptr);
                ASSERT_EQ(slot->name_view(), name);
                metric_add(*slot, 1, i);
            }
        });
    }
    for (auto &thread : threads)
        thread.join();
    EXPECT_EQ(r.used(), 40u);
    /* Listing by slot index finds exactly the registered names. */
    uint32_t ready = 0;
    for (uint32_t i = 0; i < r.capacity(); i++) {
        MetricSlot &slot = r.slot(i);
        if (slot.state.load() == MetricSlot::kReady) {
            ready++;
            EXPECT_EQ(r.find(slot.name_view()), &slot);
        }
    }
    EXPECT_EQ(ready, 40u);
    double total = 0;
    for (int i = 0; i < 40; i++) {
        MetricSlot *slot = r.find("metric_" + std::to_string(i));
        ASSERT_NE(slot, nullptr);
        EXPECT_DOUBLE_EQ(slot->current_value(), kThreads * kPerThread / 40);
        total += slot->current_value();
    }
    EXPECT_DOUBLE_EQ(total, kThreads * kPerThread);
}
