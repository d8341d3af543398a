/*
 * l1_store_test.cpp: unit tests for tusk::core::L1Store (no PostgreSQL needed).
 *
 * Every test lays a store out over memory it allocates itself, passes times as
 * plain integers and, where it wants collisions, passes the same hash for
 * different keys.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <ostream>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cache_key.hpp"
#include "core/l1_store.hpp"

namespace tusk::core {
/* Readable gtest failure messages. */
inline std::ostream &operator<<(std::ostream &os, LookupStatus s)
{
    switch (s) {
    case LookupStatus::Hit: return os << "Hit";
    case LookupStatus::Miss: return os << "Miss";
    case LookupStatus::Expired: return os << "Expired";
    case LookupStatus::FingerprintMismatch: return os << "FingerprintMismatch";
    case LookupStatus::NoMemory: return os << "NoMemory";
    }
    return os << "LookupStatus(" << int(s) << ")";
}
inline std::ostream &operator<<(std::ostream &os, PutStatus s)
{
    switch (s) {
    case PutStatus::Stored: return os << "Stored";
    case PutStatus::TooLarge: return os << "TooLarge";
    }
    return os << "PutStatus(" << int(s) << ")";
}
inline std::ostream &operator<<(std::ostream &os, const Fingerprint &f)
{
    return os << "{" << f.lo << "," << f.hi << "}";
}
}  // namespace tusk::core

using namespace tusk::core;

namespace {

constexpr int64_t kNever = INT64_MAX;
constexpr uint8_t kCanary = 0xEE;

/* 64-byte aligned memory of exactly `size` bytes (so ASan sees overruns). */
class Memory {
  public:
    explicit Memory(size_t size, uint8_t fill = 0) : size_(size)
    {
        ptr_ = static_cast<uint8_t *>(::operator new(size, std::align_val_t(64)));
        std::memset(ptr_, fill, size);
    }
    ~Memory() { ::operator delete(ptr_, std::align_val_t(64)); }
    Memory(const Memory &) = delete;
    Memory &operator=(const Memory &) = delete;
    uint8_t *data() const { return ptr_; }
    size_t size() const { return size_; }

  private:
    uint8_t *ptr_;
    size_t size_;
};

struct TestStore {
    Memory mem;
    L1Store *store;
    TestStore(size_t size, uint32_t partitions)
        : mem(size), store(L1Store::format(mem.data(), size, partitions))
    {
    }
    L1Store *operator->() const { return store; }
};

struct Key {
    std::string bytes;
    uint64_t hash;
    KeyRef ref() const { return KeyRef{bytes.data(), uint32_t(bytes.size()), hash}; }
};

Key make_key(std::string bytes)
{
    uint64_t h = key_hash(bytes.data(), bytes.size());
    return Key{std::move(bytes), h};
}

Key make_key(std::string bytes, uint64_t hash) { return Key{std::move(bytes), hash}; }

Key scoped_key(const CacheScope &scope, const std::string &user_key)
{
    std::string out(kScopeBytes + user_key.size(), '\0');
    size_t n = encode_key(scope, user_key.data(), user_key.size(),
                          reinterpret_cast<uint8_t *>(out.data()));
    out.resize(n);
    return make_key(std::move(out));
}

/* A key whose hash falls into the given partition. */
Key key_in_partition(const L1Store *store, uint32_t partition, const std::string &base)
{
    for (int i = 0;; i++) {
        Key k = make_key(base + "#" + std::to_string(i));
        if (store->partition_of(k.hash) == partition)
            return k;
    }
}

std::string random_bytes(std::mt19937 &rng, size_t n)
{
    std::string s(n, '\0');
    for (auto &c : s)
        c = char(rng() & 0xFF);
    return s;
}

/* Sink target: records the allocation and puts a canary after the value. */
struct Buffer {
    std::vector<uint8_t> bytes;
    int allocations = 0;
    size_t last_request = SIZE_MAX;
    bool fail = false;
};

void *allocate_into(void *context, size_t length)
{
    auto *b = static_cast<Buffer *>(context);
    b->allocations++;
    b->last_request = length;
    if (b->fail)
        return nullptr;
    b->bytes.assign(length + 1, kCanary);
    return b->bytes.data();
}

ValueSink make_sink(Buffer *buf)
{
    ValueSink sink;
    sink.allocate = allocate_into;
    sink.context = buf;
    return sink;
}

struct Got {
    LookupStatus status = LookupStatus::Miss;
    std::string value;
    int64_t expires_at = 0;
    Fingerprint fingerprint;
    int allocations = 0;
};

Got lookup(L1Store *store, const Key &key, int64_t now = 0, const Fingerprint *want = nullptr)
{
    Buffer buf;
    ValueSink sink = make_sink(&buf);
    Got g;
    g.status = store->lookup(key.ref(), now, want, sink);
    g.allocations = buf.allocations;
    if (g.status == LookupStatus::Hit) {
        EXPECT_EQ(buf.allocations, 1);
        EXPECT_EQ(sink.value, static_cast<void *>(buf.bytes.data()));
        EXPECT_EQ(sink.length, buf.last_request);
        EXPECT_EQ(buf.bytes.back(), kCanary) << "lookup wrote past the length it allocated";
        g.value.assign(reinterpret_cast<const char *>(buf.bytes.data()), sink.length);
        g.expires_at = sink.expires_at;
        g.fingerprint = sink.fingerprint;
    } else {
        EXPECT_EQ(sink.value, nullptr);
    }
    return g;
}

PutStatus put(L1Store *store, const Key &key, const std::string &value, int64_t expires_at = kNever,
              int64_t now = 0, Fingerprint fp = {})
{
    return store->put(key.ref(), fp, value.data(), value.size(), expires_at, now);
}

L1Stats stats_of(const L1Store *store)
{
    L1Stats s;
    store->stats(s);
    return s;
}

size_t blocks_for(size_t total)
{
    return std::max<size_t>(1, (total + L1Store::kBlockSize - 1) / L1Store::kBlockSize);
}

/* Fixed-width (8 byte) keys for filling tests. */
Key small_key(size_t i, const char *tag = "s")
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%07zu", tag, i);
    return make_key(std::string(buf, 8));
}

/*
 * How many entries (8-byte key + value_length) a freshly formatted one
 * partition store of `size` bytes holds before it evicts for the first time.
 */
size_t entries_before_first_eviction(size_t size, size_t value_length)
{
    TestStore s(size, 1);
    EXPECT_NE(s.store, nullptr);
    std::string value(value_length, 'f');
    for (size_t n = 0; n < 1000000; n++) {
        if (put(s.store, small_key(n, "f"), value) != PutStatus::Stored) {
            ADD_FAILURE() << "put failed while filling";
            return 0;
        }
        if (stats_of(s.store).evictions > 0)
            return n;
    }
    ADD_FAILURE() << "store never evicted";
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 1. format / attach                                                        */
/* ------------------------------------------------------------------------ */

TEST(L1StoreFormat, RejectsMemoryBelowMinSize)
{
    for (uint32_t parts : {1u, 2u, 8u}) {
        size_t min = L1Store::min_size(parts);
        Memory mem(min);
        EXPECT_EQ(L1Store::format(mem.data(), min - 1, parts), nullptr) << parts;
        EXPECT_EQ(L1Store::format(mem.data(), 64, parts), nullptr) << parts;
        EXPECT_EQ(L1Store::format(mem.data(), 0, parts), nullptr) << parts;
        EXPECT_EQ(L1Store::attach(mem.data()), nullptr)
            << "a rejected format() must not leave an attachable store behind";
    }
    Memory mem(1 << 16);
    EXPECT_EQ(L1Store::format(mem.data(), mem.size(), 0), nullptr) << "zero partitions";
    EXPECT_EQ(L1Store::format(nullptr, 1 << 16, 1), nullptr);
}

TEST(L1StoreFormat, MinSizeIsAcceptedAndEveryPartitionIsUsable)
{
    for (uint32_t parts : {1u, 2u, 5u, 16u}) {
        size_t min = L1Store::min_size(parts);
        if (parts > 1) {
            EXPECT_GT(min, L1Store::min_size(1));
        }
        Memory mem(min);
        L1Store *s = L1Store::format(mem.data(), min, parts);
        ASSERT_NE(s, nullptr) << parts;
        EXPECT_EQ(s->partition_count(), parts);
        EXPECT_GE(s->max_entry_bytes(), L1Store::kBlockSize);

        L1Stats st = stats_of(s);
        EXPECT_GT(st.capacity_bytes, 0u);
        EXPECT_LE(st.capacity_bytes, min);
        EXPECT_EQ(st.entries, 0u);
        EXPECT_EQ(st.bytes, 0u);
        EXPECT_EQ(st.hits + st.misses + st.sets + st.evictions + st.expirations, 0u);

        /* Each partition takes an entry of the largest size. */
        std::mt19937 rng(parts);
        for (uint32_t p = 0; p < parts; p++) {
            Key k = key_in_partition(s, p, "min");
            std::string v = random_bytes(rng, s->max_entry_bytes() - k.bytes.size());
            ASSERT_EQ(put(s, k, v), PutStatus::Stored) << "partition " << p;
            Got g = lookup(s, k);
            ASSERT_EQ(g.status, LookupStatus::Hit);
            EXPECT_EQ(g.value, v);
        }
        EXPECT_EQ(stats_of(s).entries, parts);
        EXPECT_EQ(stats_of(s).evictions, 0u);
    }
}

TEST(L1StoreFormat, CapacityIsPositiveAndWithinTheMemory)
{
    for (uint32_t parts : {1u, 3u, 8u}) {
        for (size_t size : {L1Store::min_size(parts), L1Store::min_size(parts) + 1,
                            L1Store::min_size(parts) + 4095, size_t(10007), size_t(65536 + 13),
                            size_t(1) << 20, size_t(3) << 20}) {
            if (size < L1Store::min_size(parts))
                continue;
            Memory mem(size);
            L1Store *s = L1Store::format(mem.data(), size, parts);
            ASSERT_NE(s, nullptr) << size << " bytes, " << parts << " partitions";
            L1Stats st = stats_of(s);
            EXPECT_GT(st.capacity_bytes, 0u);
            EXPECT_LE(st.capacity_bytes, size);
            EXPECT_LE(s->max_entry_bytes() * parts, st.capacity_bytes);
            if (size >= (size_t(64) << 10) * parts) {
                EXPECT_GE(double(st.capacity_bytes), 0.8 * double(size))
                    << "layout overhead is unexpectedly large for " << size << " bytes";
            }
        }
    }
}

TEST(L1StoreFormat, NeverTouchesMemoryPastItsSize)
{
    constexpr size_t kGuard = 4096;
    constexpr uint8_t kPattern = 0xA5;
    for (uint32_t parts : {1u, 3u}) {
        for (size_t size : {L1Store::min_size(parts), L1Store::min_size(parts) + 100,
                            size_t(20000 + 7)}) {
            /* Pattern-filled (not zeroed) memory: format() must not rely on zeroes. */
            Memory mem(size + kGuard, kPattern);
            L1Store *s = L1Store::format(mem.data(), size, parts);
            ASSERT_NE(s, nullptr);
            std::mt19937 rng{static_cast<uint32_t>(size)};
            size_t max = s->max_entry_bytes();
            std::vector<Key> keys;
            for (int i = 0; i < 1500; i++) {
                Key k = make_key("guard:" + std::to_string(i % 200));
                size_t len = rng() % (max - k.bytes.size() + 1);
                ASSERT_EQ(put(s, k, random_bytes(rng, len)), PutStatus::Stored);
                lookup(s, make_key("guard:" + std::to_string(rng() % 200)));
                if (i % 7 == 0)
                    s->erase(make_key("guard:" + std::to_string(rng() % 200)).ref());
            }
            for (uint32_t p = 0; p < parts; p++)
                s->erase_prefix(p, "guard:1", 7);
            EXPECT_LE(stats_of(s).bytes, stats_of(s).capacity_bytes);
            for (size_t i = size; i < size + kGuard; i++)
                ASSERT_EQ(mem.data()[i], kPattern) << "byte " << i << " past the " << size
                                                   << "-byte store was written";
        }
    }
}

TEST(L1StoreAttach, ReturnsTheFormattedStore)
{
    TestStore s(64 * 1024, 4);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("attach-me");
    ASSERT_EQ(put(s.store, k, "value"), PutStatus::Stored);

    L1Store *again = L1Store::attach(s.mem.data());
    ASSERT_EQ(again, s.store);
    EXPECT_EQ(again->partition_count(), 4u);
    Got g = lookup(again, k);
    EXPECT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, "value");
}

TEST(L1StoreAttach, RejectsZeroedAndGarbageMemory)
{
    constexpr size_t kSize = 64 * 1024;
    Memory zero(kSize, 0);
    EXPECT_EQ(L1Store::attach(zero.data()), nullptr);

    Memory garbage(kSize);
    std::mt19937 rng(7);
    for (size_t i = 0; i < kSize; i++)
        garbage.data()[i] = uint8_t(rng());
    EXPECT_EQ(L1Store::attach(garbage.data()), nullptr);

    EXPECT_EQ(L1Store::attach(nullptr), nullptr);
}

TEST(L1StoreAttach, WorksWhenTheBlockIsMappedAtAnotherAddress)
{
    /* Nothing in the block may be a pointer: a byte copy elsewhere must work. */
    constexpr size_t kSize = 128 * 1024;
    TestStore s(kSize, 3);
    ASSERT_NE(s.store, nullptr);
    std::mt19937 rng(11);
    std::vector<std::pair<Key, std::string>> data;
    for (int i = 0; i < 40; i++) {
        data.emplace_back(make_key("moved:" + std::to_string(i)), random_bytes(rng, rng() % 900));
        ASSERT_EQ(put(s.store, data.back().first, data.back().second), PutStatus::Stored);
    }
    ASSERT_EQ(stats_of(s.store).evictions, 0u);

    Memory copy(kSize);
    std::memcpy(copy.data(), s.mem.data(), kSize);
    L1Store *moved = L1Store::attach(copy.data());
    ASSERT_NE(moved, nullptr);
    ASSERT_NE(moved, s.store);
    for (auto &[k, v] : data) {
        Got g = lookup(moved, k);
        ASSERT_EQ(g.status, LookupStatus::Hit);
        EXPECT_EQ(g.value, v);
    }
    /* Writing to the copy leaves the original alone. */
    ASSERT_TRUE(moved->erase(data[0].first.ref()));
    EXPECT_EQ(lookup(moved, data[0].first).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, data[0].first).status, LookupStatus::Hit);
}

/* ------------------------------------------------------------------------ */
/* 2. put / lookup / replace / erase                                         */
/* ------------------------------------------------------------------------ */

TEST(L1StoreRoundTrip, ValuesOfManySizesAreByteExact)
{
    TestStore s(256 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    constexpr size_t kKeyLen = 16;
    std::mt19937 rng(42);
    std::vector<size_t> sizes = {0,   1,   2,   239, 240, 241, 255,  256,  257,  496,
                                 511, 512, 513, 767, 768, 769, 1000, 4095, 4096, 4097, 10000};
    std::vector<std::pair<Key, std::string>> stored;
    uint64_t bytes = 0;
    for (size_t size : sizes) {
        char name[kKeyLen + 1];
        std::snprintf(name, sizeof name, "value-size-%05zu", size);
        Key k = make_key(std::string(name, kKeyLen));
        std::string v = random_bytes(rng, size);
        ASSERT_EQ(put(s.store, k, v), PutStatus::Stored) << size;
        Got g = lookup(s.store, k);
        ASSERT_EQ(g.status, LookupStatus::Hit) << size;
        EXPECT_EQ(g.value.size(), size);
        EXPECT_EQ(g.value, v) << size;
        stored.emplace_back(k, v);
        bytes += kKeyLen + size;
    }
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.entries, sizes.size());
    EXPECT_EQ(st.bytes, bytes);
    /* Later entries did not overwrite earlier ones. */
    for (auto &[k, v] : stored) {
        Got g = lookup(s.store, k);
        ASSERT_EQ(g.status, LookupStatus::Hit);
        EXPECT_EQ(g.value, v) << "value of " << v.size() << " bytes was damaged";
    }

    /* The largest entry the store accepts: max_entry_bytes() - key length. */
    Key big = make_key(std::string("the-largest-key!", kKeyLen));
    std::string v = random_bytes(rng, s->max_entry_bytes() - kKeyLen);
    ASSERT_EQ(put(s.store, big, v), PutStatus::Stored);
    Got g = lookup(s.store, big);
    ASSERT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, v);
    st = stats_of(s.store);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, s->max_entry_bytes());
}

TEST(L1StoreRoundTrip, KeysOfManySizesAreComparedInFull)
{
    TestStore s(256 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    std::mt19937 rng(5);
    std::vector<std::pair<Key, std::string>> stored;
    for (size_t klen : {0, 1, 7, 255, 256, 257, 511, 512, 513, 1000}) {
        Key k = make_key(random_bytes(rng, klen));
        std::string last;
        for (size_t vlen : {0, 1, 255, 256, 300, 2, 700}) {
            last = random_bytes(rng, vlen);
            ASSERT_EQ(put(s.store, k, last), PutStatus::Stored);
            Got g = lookup(s.store, k);
            ASSERT_EQ(g.status, LookupStatus::Hit) << "key " << klen << " value " << vlen;
            EXPECT_EQ(g.value, last) << "key " << klen << " value " << vlen;
        }
        stored.emplace_back(k, last);
    }
    EXPECT_EQ(stats_of(s.store).entries, stored.size());
    for (auto &[k, v] : stored) {
        Got g = lookup(s.store, k);
        ASSERT_EQ(g.status, LookupStatus::Hit) << "key of " << k.bytes.size() << " bytes";
        EXPECT_EQ(g.value, v);
    }
}

TEST(L1StoreRoundTrip, ReplacingKeepsOneEntryAndUpdatesBytes)
{
    TestStore s(64 * 1024, 2);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("replace-me");
    const uint64_t klen = k.bytes.size();
    std::mt19937 rng(3);

    std::string v1 = random_bytes(rng, 100);
    ASSERT_EQ(put(s.store, k, v1, 1000, 0, Fingerprint{1, 1}), PutStatus::Stored);
    EXPECT_EQ(stats_of(s.store).entries, 1u);
    EXPECT_EQ(stats_of(s.store).bytes, klen + 100);

    std::string v2 = random_bytes(rng, 700);
    ASSERT_EQ(put(s.store, k, v2, 2000, 0, Fingerprint{2, 2}), PutStatus::Stored);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, klen + 700);
    Got g = lookup(s.store, k);
    ASSERT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, v2);
    EXPECT_EQ(g.expires_at, 2000);
    EXPECT_EQ(g.fingerprint, (Fingerprint{2, 2}));

    std::string v3 = "abc";
    ASSERT_EQ(put(s.store, k, v3, 3000, 0, Fingerprint{3, 3}), PutStatus::Stored);
    st = stats_of(s.store);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, klen + 3);
    EXPECT_EQ(st.sets, 3u);
    EXPECT_EQ(st.evictions, 0u);
    g = lookup(s.store, k);
    ASSERT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, v3);
    EXPECT_EQ(g.expires_at, 3000);
    EXPECT_EQ(g.fingerprint, (Fingerprint{3, 3}));
}

TEST(L1StoreRoundTrip, EraseReturnsTrueThenFalse)
{
    TestStore s(64 * 1024, 2);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("erase-me");
    Key other = make_key("keep-me");
    EXPECT_FALSE(s->erase(k.ref())) << "never stored";
    ASSERT_EQ(put(s.store, k, std::string(600, 'x')), PutStatus::Stored);
    ASSERT_EQ(put(s.store, other, "kept"), PutStatus::Stored);

    EXPECT_TRUE(s->erase(k.ref()));
    EXPECT_FALSE(s->erase(k.ref()));
    EXPECT_EQ(lookup(s.store, k).status, LookupStatus::Miss);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, other.bytes.size() + 4);
    Got g = lookup(s.store, other);
    ASSERT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, "kept");

    /* Erase works on an expired entry too. */
    ASSERT_EQ(put(s.store, k, "old", /*expires_at=*/10, /*now=*/0), PutStatus::Stored);
    EXPECT_EQ(lookup(s.store, k, 20).status, LookupStatus::Expired);
    EXPECT_TRUE(s->erase(k.ref()));
    EXPECT_EQ(lookup(s.store, k, 0).status, LookupStatus::Miss);
    EXPECT_EQ(stats_of(s.store).expirations, 0u) << "a plain erase is not an expiration";
}

/* ------------------------------------------------------------------------ */
/* 3. collisions                                                             */
/* ------------------------------------------------------------------------ */

constexpr uint64_t kSameHash = 0x123456789abcdef0ULL;

TEST(L1StoreCollision, DifferentKeysWithTheSameHashAreBothStored)
{
    TestStore s(64 * 1024, 4);
    ASSERT_NE(s.store, nullptr);
    Key a = make_key("alpha", kSameHash);
    Key b = make_key("bravo", kSameHash);
    Key c = make_key("charlie-is-longer", kSameHash);
    ASSERT_EQ(put(s.store, a, "value-a"), PutStatus::Stored);
    ASSERT_EQ(put(s.store, b, "value-b"), PutStatus::Stored);
    ASSERT_EQ(put(s.store, c, "value-c"), PutStatus::Stored);
    EXPECT_EQ(stats_of(s.store).entries, 3u);
    EXPECT_EQ(lookup(s.store, a).value, "value-a");
    EXPECT_EQ(lookup(s.store, b).value, "value-b");
    EXPECT_EQ(lookup(s.store, c).value, "value-c");

    /* Replacing one leaves the others alone. */
    ASSERT_EQ(put(s.store, b, "value-b2"), PutStatus::Stored);
    EXPECT_EQ(stats_of(s.store).entries, 3u);
    EXPECT_EQ(lookup(s.store, a).value, "value-a");
    EXPECT_EQ(lookup(s.store, b).value, "value-b2");
    EXPECT_EQ(lookup(s.store, c).value, "value-c");

    /* Erasing one leaves the others alone. */
    EXPECT_TRUE(s->erase(b.ref()));
    EXPECT_EQ(lookup(s.store, b).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, a).value, "value-a");
    EXPECT_EQ(lookup(s.store, c).value, "value-c");
    EXPECT_FALSE(s->erase(make_key("delta", kSameHash).ref()));
    EXPECT_EQ(stats_of(s.store).entries, 2u);
}

TEST(L1StoreCollision, PrefixOrExtensionOfAKeyWithTheSameHashIsNotAHit)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key full = make_key("abcdef", kSameHash);
    ASSERT_EQ(put(s.store, full, "full"), PutStatus::Stored);
    EXPECT_EQ(lookup(s.store, make_key("abc", kSameHash)).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, make_key("abcdefg", kSameHash)).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, make_key("", kSameHash)).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, make_key("abcdeg", kSameHash)).status, LookupStatus::Miss);
    EXPECT_FALSE(s->erase(make_key("abc", kSameHash).ref()));

    Key prefix = make_key("abc", kSameHash);
    ASSERT_EQ(put(s.store, prefix, "prefix"), PutStatus::Stored);
    EXPECT_EQ(stats_of(s.store).entries, 2u);
    EXPECT_EQ(lookup(s.store, full).value, "full");
    EXPECT_EQ(lookup(s.store, prefix).value, "prefix");
}

TEST(L1StoreCollision, LongKeysDifferingOnlyInALaterBlock)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    std::string base(700, 'k');
    std::string k1 = base, k2 = base, k3 = base;
    k2[699] = 'x'; /* last byte, third block */
    k3[256] = 'x'; /* first byte of the second block */
    Key a = make_key(k1, kSameHash), b = make_key(k2, kSameHash), c = make_key(k3, kSameHash);
    ASSERT_EQ(put(s.store, a, "a"), PutStatus::Stored);
    EXPECT_EQ(lookup(s.store, b).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, c).status, LookupStatus::Miss);
    ASSERT_EQ(put(s.store, b, "b"), PutStatus::Stored);
    ASSERT_EQ(put(s.store, c, "c"), PutStatus::Stored);
    EXPECT_EQ(lookup(s.store, a).value, "a");
    EXPECT_EQ(lookup(s.store, b).value, "b");
    EXPECT_EQ(lookup(s.store, c).value, "c");
    EXPECT_EQ(stats_of(s.store).entries, 3u);
}

TEST(L1StoreCollision, LongChainSurvivesRemovalsFromTheMiddle)
{
    TestStore s(256 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    std::vector<Key> keys;
    for (int i = 0; i < 60; i++) {
        keys.push_back(make_key("chain-" + std::to_string(i), kSameHash));
        ASSERT_EQ(put(s.store, keys.back(), "v" + std::to_string(i)), PutStatus::Stored);
    }
    ASSERT_EQ(stats_of(s.store).evictions, 0u);
    for (int i = 0; i < 60; i += 3)
        ASSERT_TRUE(s->erase(keys[i].ref()));
    for (int i = 0; i < 60; i++) {
        Got g = lookup(s.store, keys[i]);
        if (i % 3 == 0) {
            EXPECT_EQ(g.status, LookupStatus::Miss) << i;
        } else {
            ASSERT_EQ(g.status, LookupStatus::Hit) << i;
            EXPECT_EQ(g.value, "v" + std::to_string(i));
        }
    }
    EXPECT_EQ(stats_of(s.store).entries, 40u);
}

/* ------------------------------------------------------------------------ */
/* 4. fingerprints                                                           */
/* ------------------------------------------------------------------------ */

TEST(L1StoreFingerprint, MismatchIsReportedAndCountedAsMiss)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("fp");
    const Fingerprint stored{0x1111, 0x2222};
    ASSERT_EQ(put(s.store, k, "value", kNever, 0, stored), PutStatus::Stored);

    for (Fingerprint other : {Fingerprint{0x1111, 0x2223}, Fingerprint{0x1112, 0x2222},
                              Fingerprint{0, 0}}) {
        s->reset_counters();
        Got g = lookup(s.store, k, 0, &other);
        EXPECT_EQ(g.status, LookupStatus::FingerprintMismatch) << other;
        EXPECT_EQ(g.allocations, 0) << "a mismatching value must not be copied";
        L1Stats st = stats_of(s.store);
        EXPECT_EQ(st.misses, 1u);
        EXPECT_EQ(st.hits, 0u);
    }
    /* The mismatch did not remove the entry. */
    Got g = lookup(s.store, k, 0, &stored);
    EXPECT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, "value");
}

TEST(L1StoreFingerprint, NullWantMatchesAnyFingerprint)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key a = make_key("fp-a"), b = make_key("fp-b");
    ASSERT_EQ(put(s.store, a, "A", kNever, 0, Fingerprint{1, 2}), PutStatus::Stored);
    ASSERT_EQ(put(s.store, b, "B", kNever, 0, Fingerprint{}), PutStatus::Stored);
    EXPECT_EQ(lookup(s.store, a, 0, nullptr).status, LookupStatus::Hit);
    EXPECT_EQ(lookup(s.store, b, 0, nullptr).status, LookupStatus::Hit);
    EXPECT_EQ(stats_of(s.store).hits, 2u);
    EXPECT_EQ(stats_of(s.store).misses, 0u);
}

TEST(L1StoreFingerprint, HitFillsFingerprintAndExpiry)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("fp-fill");
    const Fingerprint fp{0xdeadbeefcafef00dULL, 0x0123456789abcdefULL};
    ASSERT_EQ(put(s.store, k, "payload", 123456789, 0, fp), PutStatus::Stored);
    for (const Fingerprint *want : {static_cast<const Fingerprint *>(nullptr), &fp}) {
        Got g = lookup(s.store, k, 1000, want);
        ASSERT_EQ(g.status, LookupStatus::Hit);
        EXPECT_EQ(g.fingerprint, fp);
        EXPECT_EQ(g.expires_at, 123456789);
        EXPECT_EQ(g.value, "payload");
    }
}

/* ------------------------------------------------------------------------ */
/* 5. expiry                                                                 */
/* ------------------------------------------------------------------------ */

TEST(L1StoreExpiry, LookupAtOrAfterExpiryIsExpiredAndNotCopied)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("ttl");
    ASSERT_EQ(put(s.store, k, "fresh", /*expires_at=*/1000, /*now=*/0), PutStatus::Stored);

    Got g = lookup(s.store, k, 999);
    EXPECT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, "fresh");

    for (int64_t now : {int64_t(1000), int64_t(1001), int64_t(5000), kNever}) {
        g = lookup(s.store, k, now);
        EXPECT_EQ(g.status, LookupStatus::Expired) << "now=" << now;
        EXPECT_EQ(g.allocations, 0) << "an expired value must not be copied";
    }
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.hits, 1u);
    EXPECT_EQ(st.misses, 4u);
    EXPECT_EQ(st.entries, 1u) << "lookup does not remove an expired entry";
    /* Expired wins over a fingerprint mismatch: the entry is unusable either way. */
    Fingerprint other{9, 9};
    EXPECT_EQ(lookup(s.store, k, 1000, &other).status, LookupStatus::Expired);
}

TEST(L1StoreExpiry, EraseExpiredRemovesOnlyExpiredEntries)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("ttl-erase");
    Key live = make_key("ttl-live");
    ASSERT_EQ(put(s.store, k, "v", 1000, 0), PutStatus::Stored);
    ASSERT_EQ(put(s.store, live, "w", kNever, 0), PutStatus::Stored);

    EXPECT_FALSE(s->erase_expired(k.ref(), 999)) << "still live at 999";
    EXPECT_EQ(lookup(s.store, k, 999).status, LookupStatus::Hit);
    EXPECT_EQ(stats_of(s.store).expirations, 0u);

    EXPECT_TRUE(s->erase_expired(k.ref(), 1000));
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.expirations, 1u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, live.bytes.size() + 1);
    EXPECT_EQ(lookup(s.store, k, 0).status, LookupStatus::Miss);
    EXPECT_FALSE(s->erase_expired(k.ref(), 1000)) << "already gone";
    EXPECT_FALSE(s->erase_expired(make_key("never-stored").ref(), 1000));

    EXPECT_FALSE(s->erase_expired(live.ref(), 1'000'000'000)) << "live entry must stay";
    EXPECT_EQ(lookup(s.store, live, 1'000'000'000).status, LookupStatus::Hit);
    EXPECT_EQ(stats_of(s.store).expirations, 1u);
}

TEST(L1StoreExpiry, EvictionReclaimsExpiredEntriesAsExpirations)
{
    constexpr size_t kSize = 16 * 1024;
    const size_t n = entries_before_first_eviction(kSize, 40);
    ASSERT_GE(n, 4u);
    TestStore s(kSize, 1);
    ASSERT_NE(s.store, nullptr);
    std::string value(40, 'o');
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(put(s.store, small_key(i, "o"), value, /*expires_at=*/100, /*now=*/0),
                  PutStatus::Stored);
    ASSERT_EQ(stats_of(s.store).evictions, 0u);
    ASSERT_EQ(stats_of(s.store).entries, n);

    /* At now=200 every old entry has expired: making room must not evict. */
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(put(s.store, small_key(i, "n"), value, kNever, /*now=*/200), PutStatus::Stored);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.expirations, n);
    EXPECT_EQ(st.entries, n);
    for (size_t i = 0; i < n; i++) {
        EXPECT_EQ(lookup(s.store, small_key(i, "n"), 200).status, LookupStatus::Hit);
        EXPECT_EQ(lookup(s.store, small_key(i, "o"), 0).status, LookupStatus::Miss);
    }
}

TEST(L1StoreExpiry, ClockTakesExpiredEntriesBeforeReferencedLiveOnes)
{
    constexpr size_t kSize = 16 * 1024;
    const size_t n = entries_before_first_eviction(kSize, 40);
    ASSERT_GE(n, 4u);
    TestStore s(kSize, 1);
    ASSERT_NE(s.store, nullptr);
    std::string value(40, 'm');
    /* Alternate expired-soon and live entries; read every live one. */
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(put(s.store, small_key(i, "m"), value, (i % 2) ? kNever : 100, 0),
                  PutStatus::Stored);
    for (size_t i = 1; i < n; i += 2)
        ASSERT_EQ(lookup(s.store, small_key(i, "m"), 50).status, LookupStatus::Hit);
    ASSERT_EQ(stats_of(s.store).evictions, 0u);

    const size_t expired = (n + 1) / 2;
    for (size_t i = 0; i < expired; i++)
        ASSERT_EQ(put(s.store, small_key(i, "x"), value, kNever, /*now=*/200), PutStatus::Stored);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.evictions, 0u) << "a referenced live entry was evicted while expired ones remained";
    EXPECT_EQ(st.expirations, expired);
    for (size_t i = 1; i < n; i += 2)
        EXPECT_EQ(lookup(s.store, small_key(i, "m"), 200).status, LookupStatus::Hit) << i;
}

/* ------------------------------------------------------------------------ */
/* 6. capacity and eviction                                                  */
/* ------------------------------------------------------------------------ */

TEST(L1StoreEviction, FillingFarBeyondCapacityAlwaysStores)
{
    for (size_t size : {L1Store::min_size(1), size_t(4096), size_t(8192)}) {
        TestStore s(size, 1);
        ASSERT_NE(s.store, nullptr) << size;
        const uint64_t capacity = stats_of(s.store).capacity_bytes;
        const size_t max = s->max_entry_bytes();
        std::mt19937 rng{static_cast<uint32_t>(size)};
        constexpr int kPuts = 4000;
        uint64_t written = 0;
        for (int i = 0; i < kPuts; i++) {
            Key k = make_key("fill:" + std::to_string(i));
            size_t room = max - k.bytes.size();
            size_t len = (rng() % 4 == 0) ? rng() % (room + 1) : rng() % std::min<size_t>(room + 1, 300);
            std::string v = random_bytes(rng, len);
            ASSERT_EQ(put(s.store, k, v, kNever, i), PutStatus::Stored) << "put " << i;
            written += k.bytes.size() + len;
            Got g = lookup(s.store, k, i);
            ASSERT_EQ(g.status, LookupStatus::Hit) << "the entry just stored must be present";
            ASSERT_EQ(g.value, v);
            L1Stats st = stats_of(s.store);
            ASSERT_GE(st.entries, 1u);
            ASSERT_LE(st.bytes, capacity);
            ASSERT_LE(st.entries * L1Store::kBlockSize, capacity)
                << "each entry needs at least one block";
        }
        L1Stats st = stats_of(s.store);
        EXPECT_EQ(st.sets, uint64_t(kPuts));
        EXPECT_GT(written, 10 * capacity);
        EXPECT_GT(st.evictions, 0u);
        EXPECT_EQ(st.sets - st.evictions, st.entries) << "every put adds one entry, every eviction removes one";
    }
}

TEST(L1StoreEviction, TooLargeIsRejectedWithoutSideEffects)
{
    for (uint32_t parts : {1u, 4u}) {
        TestStore s(32 * 1024, parts);
        ASSERT_NE(s.store, nullptr);
        std::vector<Key> keys;
        for (int i = 0; i < 10; i++) {
            keys.push_back(make_key("small:" + std::to_string(i)));
            ASSERT_EQ(put(s.store, keys.back(), "value"), PutStatus::Stored);
        }
        L1Stats before = stats_of(s.store);

        Key k = make_key("too-large");
        size_t max = s->max_entry_bytes();
        std::string v(max - k.bytes.size() + 1, 'L');
        EXPECT_EQ(put(s.store, k, v), PutStatus::TooLarge);
        EXPECT_EQ(put(s.store, make_key(std::string(max + 1, 'K')), ""), PutStatus::TooLarge);
        std::string huge(4 * max, 'H');
        EXPECT_EQ(put(s.store, k, huge), PutStatus::TooLarge);

        L1Stats after = stats_of(s.store);
        EXPECT_EQ(after.sets, before.sets);
        EXPECT_EQ(after.entries, before.entries);
        EXPECT_EQ(after.bytes, before.bytes);
        EXPECT_EQ(after.evictions, 0u) << "a rejected put must not evict";
        EXPECT_EQ(lookup(s.store, k).status, LookupStatus::Miss);
        for (auto &key : keys)
            EXPECT_EQ(lookup(s.store, key).value, "value");

        /* One byte less fits. */
        v.pop_back();
        EXPECT_EQ(put(s.store, k, v), PutStatus::Stored);
        EXPECT_EQ(lookup(s.store, k).value, v);
    }
}

TEST(L1StoreEviction, TooLargeReplacementRemovesTheOldValue)
{
    TestStore s(32 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("grows");
    ASSERT_EQ(put(s.store, k, "old value"), PutStatus::Stored);
    Key other = make_key("other");
    ASSERT_EQ(put(s.store, other, "kept"), PutStatus::Stored);

    std::string too_big(s->max_entry_bytes(), 'B');
    EXPECT_EQ(put(s.store, k, too_big), PutStatus::TooLarge);
    EXPECT_EQ(lookup(s.store, k).status, LookupStatus::Miss) << "a superseded value must not be served";
    EXPECT_EQ(lookup(s.store, other).value, "kept");
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.evictions, 0u);
}

TEST(L1StoreEviction, EachPutIntoAFullStoreEvictsExactlyOneEqualSizedEntry)
{
    constexpr size_t kSize = 16 * 1024;
    for (size_t vlen : {size_t(40), size_t(600)}) {
        const size_t n = entries_before_first_eviction(kSize, vlen);
        ASSERT_GE(n, 2u);
        TestStore s(kSize, 1);
        ASSERT_NE(s.store, nullptr);
        std::string v(vlen, 'e');
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(put(s.store, small_key(i), v), PutStatus::Stored);
        ASSERT_EQ(stats_of(s.store).evictions, 0u);
        constexpr size_t kMore = 50;
        for (size_t i = n; i < n + kMore; i++)
            ASSERT_EQ(put(s.store, small_key(i), v), PutStatus::Stored);
        L1Stats st = stats_of(s.store);
        EXPECT_EQ(st.evictions, kMore) << vlen;
        EXPECT_EQ(st.entries, n);
        EXPECT_EQ(st.bytes, n * (8 + vlen));
        EXPECT_EQ(st.expirations, 0u);
    }
}

/* Inserts n entries, then 3n more; if read_first, reads the first after each put. */
struct ClockRun {
    bool first_present;
    size_t originals_present;
    size_t n;
};

ClockRun clock_run(bool read_first)
{
    constexpr size_t kSize = 16 * 1024;
    const size_t n = entries_before_first_eviction(kSize, 40);
    TestStore s(kSize, 1);
    EXPECT_NE(s.store, nullptr);
    std::string v(40, 'c');
    for (size_t i = 0; i < n; i++) {
        EXPECT_EQ(put(s.store, small_key(i, "a"), v), PutStatus::Stored);
        if (read_first) {
            EXPECT_EQ(lookup(s.store, small_key(0, "a")).status, LookupStatus::Hit);
        }
    }
    for (size_t i = 0; i < 3 * n; i++) {
        EXPECT_EQ(put(s.store, small_key(i, "b"), v), PutStatus::Stored);
        if (read_first) {
            EXPECT_EQ(lookup(s.store, small_key(0, "a")).status, LookupStatus::Hit)
                << "referenced entry evicted after " << i << " more puts";
        }
    }
    EXPECT_GE(stats_of(s.store).evictions, 2 * n);
    ClockRun r{lookup(s.store, small_key(0, "a")).status == LookupStatus::Hit, 0, n};
    for (size_t i = 1; i < n; i++)
        r.originals_present += lookup(s.store, small_key(i, "a")).status == LookupStatus::Hit;
    return r;
}

TEST(L1StoreEviction, ReferencedEntrySurvivesWhileUnreferencedOnesAreEvicted)
{
    ClockRun r = clock_run(/*read_first=*/true);
    ASSERT_GE(r.n, 4u);
    EXPECT_TRUE(r.first_present);
    EXPECT_LT(r.originals_present, r.n - 1) << "no unreferenced original was evicted";
}

TEST(L1StoreEviction, UnreferencedEntryIsEvictedWithoutReads)
{
    /* Control for the test above: the same run without reads loses the first entry. */
    ClockRun r = clock_run(/*read_first=*/false);
    ASSERT_GE(r.n, 4u);
    EXPECT_FALSE(r.first_present);
}

/* ------------------------------------------------------------------------ */
/* 7. fragmentation under churn                                              */
/* ------------------------------------------------------------------------ */

struct ChurnParams {
    const char *name;
    bool colliding;
    uint32_t seed;
};

void PrintTo(const ChurnParams &p, std::ostream *os) { *os << p.name << " seed " << p.seed; }

class L1StoreChurn : public ::testing::TestWithParam<ChurnParams> {};

TEST_P(L1StoreChurn, RandomChurnNeverReturnsStaleValuesAndLosesNoSpace)
{
    const ChurnParams param = GetParam();
    constexpr size_t kSize = 24 * 1024;
    constexpr int kKeys = 300;
    constexpr int kOps = 40000;
    TestStore s(kSize, 1);
    ASSERT_NE(s.store, nullptr);
    const uint64_t capacity = stats_of(s.store).capacity_bytes;
    const size_t max = s->max_entry_bytes();
    std::mt19937 rng(param.seed);

    std::vector<Key> keys;
    for (int i = 0; i < kKeys; i++) {
        std::string b = "churn:" + std::to_string(i) + ":";
        b.append((i % 37 == 0) ? 300 : size_t(i % 23), char('a' + i % 26)); /* some keys span blocks */
        uint64_t h = key_hash(b.data(), b.size());
        if (param.colliding)
            h &= 0x7; /* only 8 distinct hashes: long collision chains */
        keys.push_back(Key{b, h});
    }

    struct ModelEntry {
        std::string value;
        int64_t expires_at;
        Fingerprint fingerprint;
    };
    std::map<int, ModelEntry> model; /* what the store holds unless it evicted it */

    auto random_size = [&]() -> size_t {
        unsigned r = rng() % 100;
        if (r < 50)
            return 1 + rng() % 200;
        if (r < 85)
            return 1 + rng() % 1500;
        return 1 + rng() % 6000;
    };

    /* Every entry still present is the model's latest; the counters agree. */
    auto check_present = [&](int op) {
        uint64_t sum = 0, count = 0, blocks = 0;
        for (auto &[id, e] : model) {
            /* now = INT64_MIN sees entries whatever their expiry. */
            Got g = lookup(s.store, keys[id], INT64_MIN);
            if (g.status == LookupStatus::Miss)
                continue;
            ASSERT_EQ(g.status, LookupStatus::Hit) << "op " << op;
            ASSERT_EQ(g.value, e.value) << "stale or wrong value for key " << id << " at op " << op;
            ASSERT_EQ(g.expires_at, e.expires_at);
            ASSERT_EQ(g.fingerprint, e.fingerprint);
            size_t total = keys[id].bytes.size() + e.value.size();
            sum += total;
            count++;
            blocks += blocks_for(total);
        }
        L1Stats st = stats_of(s.store);
        ASSERT_EQ(st.entries, count) << "entries counter disagrees with contents at op " << op;
        ASSERT_EQ(st.bytes, sum) << "bytes counter disagrees with contents at op " << op;
        ASSERT_LE(blocks * L1Store::kBlockSize, capacity);
    };

    int64_t now = 1;
    for (int op = 0; op < kOps; op++) {
        now += 1 + rng() % 3;
        const int id = int(rng() % kKeys);
        const Key &k = keys[id];
        const unsigned r = rng() % 100;
        if (r < 55) {
            std::string v = random_bytes(rng, std::min(random_size(), max - k.bytes.size()));
            int64_t exp = (rng() % 4 == 0) ? now + 1 + rng() % 2000 : kNever;
            Fingerprint fp{uint64_t(id), uint64_t(op)};
            ASSERT_EQ(put(s.store, k, v, exp, now, fp), PutStatus::Stored) << "op " << op;
            model[id] = ModelEntry{v, exp, fp};
            Got g = lookup(s.store, k, now, &fp);
            ASSERT_EQ(g.status, LookupStatus::Hit) << "op " << op;
            ASSERT_EQ(g.value, v);
        } else if (r < 75) {
            bool erased = s->erase(k.ref());
            if (erased) {
                ASSERT_TRUE(model.count(id)) << "erased a key that should not exist, op " << op;
            }
            model.erase(id);
            ASSERT_EQ(lookup(s.store, k, INT64_MIN).status, LookupStatus::Miss);
        } else if (r < 80) {
            bool erased = s->erase_expired(k.ref(), now);
            auto it = model.find(id);
            if (erased) {
                ASSERT_NE(it, model.end()) << "op " << op;
                ASSERT_LE(it->second.expires_at, now) << "erase_expired removed a live entry";
                model.erase(it);
            } else if (it != model.end() && it->second.expires_at <= now) {
                /* Not erased although expired: it must have been evicted already. */
                ASSERT_EQ(lookup(s.store, k, INT64_MIN).status, LookupStatus::Miss) << "op " << op;
            }
        } else {
            auto it = model.find(id);
            const unsigned mode = rng() % 3; /* 0: any, 1: right fingerprint, 2: wrong one */
            Fingerprint wrong{uint64_t(id), ~uint64_t(0)};
            const Fingerprint *want = nullptr;
            if (mode == 1 && it != model.end())
                want = &it->second.fingerprint;
            else if (mode == 2)
                want = &wrong;
            Got g = lookup(s.store, k, now, want);
            switch (g.status) {
            case LookupStatus::Hit:
                ASSERT_NE(it, model.end()) << "hit on a key that should not exist, op " << op;
                ASSERT_NE(want, &wrong) << "hit despite a wrong fingerprint";
                ASSERT_EQ(g.value, it->second.value) << "stale or wrong value, op " << op;
                ASSERT_LT(now, it->second.expires_at);
                ASSERT_EQ(g.fingerprint, it->second.fingerprint);
                break;
            case LookupStatus::Expired:
                ASSERT_NE(it, model.end());
                ASSERT_LE(it->second.expires_at, now);
                break;
            case LookupStatus::FingerprintMismatch:
                ASSERT_NE(it, model.end());
                ASSERT_EQ(want, &wrong);
                break;
            case LookupStatus::Miss:
                break; /* absent, or evicted */
            default:
                FAIL() << "unexpected status " << g.status;
            }
        }
        L1Stats st = stats_of(s.store);
        ASSERT_LE(st.bytes, capacity);
        if (op % 200 == 0) {
            check_present(op);
            if (HasFatalFailure())
                return;
        }
    }
    check_present(kOps);
    if (HasFatalFailure())
        return;

    const L1Stats before = stats_of(s.store);
    EXPECT_GT(before.evictions, 0u) << "the churn should have filled the store";
    EXPECT_GT(before.expirations, 0u) << "the churn should have met expired entries";

    /* Erase everything. */
    uint64_t removed = s->erase_prefix(0, "", 0);
    EXPECT_EQ(removed, before.entries);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.bytes, 0u);
    for (const Key &k : keys)
        ASSERT_EQ(lookup(s.store, k, INT64_MIN).status, LookupStatus::Miss);

    /* All blocks usable again: the largest entry fits without any eviction. */
    Key big = make_key("after-churn");
    std::string v = random_bytes(rng, max - big.bytes.size());
    ASSERT_EQ(put(s.store, big, v, kNever, now), PutStatus::Stored);
    st = stats_of(s.store);
    EXPECT_EQ(st.evictions, before.evictions) << "space was lost during churn";
    EXPECT_EQ(st.expirations, before.expirations);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.bytes, max);
    EXPECT_EQ(lookup(s.store, big, now).value, v);
    ASSERT_TRUE(s->erase(big.ref()));

    /* All slots usable again: as many small entries fit as in a fresh store. */
    const size_t fresh = entries_before_first_eviction(kSize, 1);
    for (size_t i = 0; i < fresh; i++)
        ASSERT_EQ(put(s.store, small_key(i), "z", kNever, now), PutStatus::Stored);
    st = stats_of(s.store);
    EXPECT_EQ(st.evictions, before.evictions) << "entry slots were lost during churn";
    EXPECT_EQ(st.entries, fresh);
}

INSTANTIATE_TEST_SUITE_P(Hashes, L1StoreChurn,
                         ::testing::Values(ChurnParams{"DistinctHashes", false, 12345},
                                           ChurnParams{"CollidingHashes", true, 777}),
                         [](const ::testing::TestParamInfo<ChurnParams> &info) {
                             return std::string(info.param.name);
                         });

/* ------------------------------------------------------------------------ */
/* 8. erase_prefix                                                           */
/* ------------------------------------------------------------------------ */

struct ScopedData {
    CacheScope a{16384, 10};
    CacheScope b{16384, 20};
    std::vector<Key> a_user, a_item, b_user, b_item;
};

ScopedData fill_two_scopes(L1Store *s)
{
    ScopedData d;
    for (int i = 0; i < 60; i++) {
        d.a_user.push_back(scoped_key(d.a, "user:" + std::to_string(i)));
        d.a_item.push_back(scoped_key(d.a, "item:" + std::to_string(i)));
        d.b_user.push_back(scoped_key(d.b, "user:" + std::to_string(i)));
        d.b_item.push_back(scoped_key(d.b, "item:" + std::to_string(i)));
    }
    for (auto *group : {&d.a_user, &d.a_item, &d.b_user, &d.b_item})
        for (const Key &k : *group)
            EXPECT_EQ(put(s, k, "v:" + k.bytes), PutStatus::Stored);
    EXPECT_EQ(stats_of(s).evictions, 0u);
    EXPECT_EQ(stats_of(s).entries, 240u);
    return d;
}

void expect_group(L1Store *s, const std::vector<Key> &group, bool present, const char *name)
{
    for (const Key &k : group) {
        Got g = lookup(s, k);
        if (present) {
            EXPECT_EQ(g.status, LookupStatus::Hit) << name;
            EXPECT_EQ(g.value, "v:" + k.bytes) << name;
        } else {
            EXPECT_EQ(g.status, LookupStatus::Miss) << name;
        }
    }
}

TEST(L1StoreErasePrefix, ScopePrefixRemovesOnlyThatScopeInEveryPartition)
{
    constexpr uint32_t kParts = 4;
    TestStore s(1 << 20, kParts);
    ASSERT_NE(s.store, nullptr);
    ScopedData d = fill_two_scopes(s.store);
    std::set<uint32_t> used;
    for (const Key &k : d.a_user)
        used.insert(s->partition_of(k.hash));
    ASSERT_EQ(used.size(), kParts) << "keys should spread over all partitions";

    uint8_t prefix[kScopeBytes];
    ASSERT_EQ(encode_key(d.a, nullptr, 0, prefix), kScopeBytes);
    uint64_t removed = 0;
    for (uint32_t p = 0; p < kParts; p++)
        removed += s->erase_prefix(p, prefix, kScopeBytes);
    EXPECT_EQ(removed, 120u);
    expect_group(s.store, d.a_user, false, "a_user");
    expect_group(s.store, d.a_item, false, "a_item");
    expect_group(s.store, d.b_user, true, "b_user");
    expect_group(s.store, d.b_item, true, "b_item");
    EXPECT_EQ(stats_of(s.store).entries, 120u);

    /* Again: nothing left to remove. */
    removed = 0;
    for (uint32_t p = 0; p < kParts; p++)
        removed += s->erase_prefix(p, prefix, kScopeBytes);
    EXPECT_EQ(removed, 0u);
}

TEST(L1StoreErasePrefix, ScopeAndUserPrefixRemovesOnlyMatchingKeys)
{
    constexpr uint32_t kParts = 4;
    TestStore s(1 << 20, kParts);
    ASSERT_NE(s.store, nullptr);
    ScopedData d = fill_two_scopes(s.store);
    Key exact = scoped_key(d.b, "user:");
    Key shorter = scoped_key(d.b, "user");
    Key other = scoped_key(d.b, "users");
    for (const Key *k : {&exact, &shorter, &other})
        ASSERT_EQ(put(s.store, *k, "v:" + k->bytes), PutStatus::Stored);

    std::string prefix = scoped_key(d.b, "user:").bytes; /* 8 + 5 bytes */
    ASSERT_EQ(prefix.size(), kScopeBytes + 5);
    uint64_t removed = 0;
    for (uint32_t p = 0; p < kParts; p++)
        removed += s->erase_prefix(p, prefix.data(), uint32_t(prefix.size()));
    EXPECT_EQ(removed, 61u) << "60 user keys and the key equal to the prefix";
    expect_group(s.store, d.b_user, false, "b_user");
    expect_group(s.store, d.b_item, true, "b_item");
    expect_group(s.store, d.a_user, true, "a_user (same user prefix, other scope)");
    expect_group(s.store, d.a_item, true, "a_item");
    EXPECT_EQ(lookup(s.store, exact).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, shorter).status, LookupStatus::Hit);
    EXPECT_EQ(lookup(s.store, other).status, LookupStatus::Hit);
}

TEST(L1StoreErasePrefix, PrefixIsComparedAcrossBlockBoundaries)
{
    TestStore s(128 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    const std::string head(300, 'h');
    std::vector<Key> match, differ;
    for (int i = 0; i < 10; i++) {
        std::string km = head + "tail" + std::to_string(i);
        std::string kd = head + "tail" + std::to_string(i);
        kd[270] = 'X'; /* differs inside the second block */
        match.push_back(make_key(km));
        differ.push_back(make_key(kd));
        ASSERT_EQ(put(s.store, match.back(), "m"), PutStatus::Stored);
        ASSERT_EQ(put(s.store, differ.back(), "d"), PutStatus::Stored);
    }
    EXPECT_EQ(s->erase_prefix(0, head.data(), 290), 10u);
    for (int i = 0; i < 10; i++) {
        EXPECT_EQ(lookup(s.store, match[i]).status, LookupStatus::Miss);
        EXPECT_EQ(lookup(s.store, differ[i]).value, "d");
    }
    /* A prefix longer than every key matches none. */
    std::string longer(2000, 'h');
    EXPECT_EQ(s->erase_prefix(0, longer.data(), uint32_t(longer.size())), 0u);
    EXPECT_EQ(stats_of(s.store).entries, 10u);
}

TEST(L1StoreErasePrefix, EmptyPrefixRemovesEverything)
{
    constexpr uint32_t kParts = 4;
    TestStore s(1 << 20, kParts);
    ASSERT_NE(s.store, nullptr);
    ScopedData d = fill_two_scopes(s.store);
    uint64_t removed = 0;
    for (uint32_t p = 0; p < kParts; p++)
        removed += s->erase_prefix(p, "", 0);
    EXPECT_EQ(removed, 240u);
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.bytes, 0u);
    expect_group(s.store, d.a_user, false, "a_user");
    expect_group(s.store, d.b_item, false, "b_item");
}

/* ------------------------------------------------------------------------ */
/* 9. counters                                                               */
/* ------------------------------------------------------------------------ */

TEST(L1StoreCounters, HitsMissesAndSetsAreCounted)
{
    TestStore s(64 * 1024, 2);
    ASSERT_NE(s.store, nullptr);
    Key k1 = make_key("c1"), k2 = make_key("c2"), k3 = make_key("c3");
    Fingerprint fp{1, 1}, wrong{2, 2};
    ASSERT_EQ(put(s.store, k1, "1", kNever, 0, fp), PutStatus::Stored);
    ASSERT_EQ(put(s.store, k2, "2", 100, 0, fp), PutStatus::Stored);
    ASSERT_EQ(put(s.store, k1, "1b", kNever, 0, fp), PutStatus::Stored);
    EXPECT_EQ(stats_of(s.store).sets, 3u);

    EXPECT_EQ(lookup(s.store, k1).status, LookupStatus::Hit);
    EXPECT_EQ(lookup(s.store, k2).status, LookupStatus::Hit);
    EXPECT_EQ(lookup(s.store, k1, 0, &fp).status, LookupStatus::Hit);
    EXPECT_EQ(lookup(s.store, k3).status, LookupStatus::Miss);
    EXPECT_EQ(lookup(s.store, k1, 0, &wrong).status, LookupStatus::FingerprintMismatch);
    EXPECT_EQ(lookup(s.store, k2, 100).status, LookupStatus::Expired);

    EXPECT_TRUE(s->erase(k1.ref()));
    EXPECT_FALSE(s->erase(k3.ref()));
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.hits, 3u);
    EXPECT_EQ(st.misses, 3u);
    EXPECT_EQ(st.sets, 3u);
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.expirations, 0u);
    EXPECT_EQ(st.entries, 1u);
}

TEST(L1StoreCounters, ResetZeroesCountersButKeepsEntriesAndBytes)
{
    constexpr uint32_t kParts = 4;
    TestStore s(L1Store::min_size(kParts) + 4 * 2048, kParts);
    ASSERT_NE(s.store, nullptr);
    /* Activity in every partition, including evictions and expirations. */
    for (int i = 0; i < 400; i++)
        ASSERT_EQ(put(s.store, make_key("r:" + std::to_string(i)), std::string(200, 'r'),
                      (i % 2) ? kNever : 50, 0),
                  PutStatus::Stored);
    for (int i = 0; i < 400; i++)
        lookup(s.store, make_key("r:" + std::to_string(i)), 10);
    for (int i = 380; i < 400; i += 2)
        s->erase_expired(make_key("r:" + std::to_string(i)).ref(), 60);
    L1Stats before = stats_of(s.store);
    ASSERT_GT(before.hits, 0u);
    ASSERT_GT(before.misses, 0u);
    ASSERT_GT(before.sets, 0u);
    ASSERT_GT(before.evictions, 0u);
    ASSERT_GT(before.expirations, 0u);
    ASSERT_GT(before.entries, 0u);

    s->reset_counters();
    L1Stats after = stats_of(s.store);
    EXPECT_EQ(after.hits, 0u);
    EXPECT_EQ(after.misses, 0u);
    EXPECT_EQ(after.sets, 0u);
    EXPECT_EQ(after.evictions, 0u);
    EXPECT_EQ(after.expirations, 0u);
    EXPECT_EQ(after.entries, before.entries);
    EXPECT_EQ(after.bytes, before.bytes);
    EXPECT_EQ(after.capacity_bytes, before.capacity_bytes);

    /* Counting resumes from zero; contents are intact. */
    uint64_t hits = 0;
    for (int i = 0; i < 400; i++)
        hits += lookup(s.store, make_key("r:" + std::to_string(i)), 10).status == LookupStatus::Hit;
    after = stats_of(s.store);
    EXPECT_EQ(hits, after.entries);
    EXPECT_EQ(after.hits, hits);
    EXPECT_EQ(after.misses, 400 - hits);
}

/* ------------------------------------------------------------------------ */
/* 10. NoMemory                                                              */
/* ------------------------------------------------------------------------ */

TEST(L1StoreSink, AllocationFailureGivesNoMemory)
{
    TestStore s(64 * 1024, 1);
    ASSERT_NE(s.store, nullptr);
    Key k = make_key("nomem"), empty = make_key("nomem-empty");
    ASSERT_EQ(put(s.store, k, std::string(1000, 'n')), PutStatus::Stored);
    ASSERT_EQ(put(s.store, empty, ""), PutStatus::Stored);

    for (const Key *key : {&k, &empty}) {
        Buffer buf;
        buf.fail = true;
        ValueSink sink = make_sink(&buf);
        EXPECT_EQ(s->lookup(key->ref(), 0, nullptr, sink), LookupStatus::NoMemory);
        EXPECT_EQ(buf.allocations, 1);
        EXPECT_EQ(buf.last_request, key == &k ? 1000u : 0u);
        EXPECT_EQ(sink.value, nullptr);
        EXPECT_EQ(sink.length, 0u);
    }
    L1Stats st = stats_of(s.store);
    EXPECT_EQ(st.hits, 0u);
    EXPECT_EQ(st.misses, 2u);
    EXPECT_EQ(st.entries, 2u);
    /* The entry is still there for a sink that can allocate. */
    EXPECT_EQ(lookup(s.store, k).value, std::string(1000, 'n'));
    Got g = lookup(s.store, empty);
    EXPECT_EQ(g.status, LookupStatus::Hit);
    EXPECT_EQ(g.value, "");
}

/* ------------------------------------------------------------------------ */
/* partitions                                                                */
/* ------------------------------------------------------------------------ */

TEST(L1StorePartitions, PartitionOfIsInRangeAndUsesEveryPartition)
{
    for (uint32_t parts : {1u, 3u, 8u, 13u}) {
        TestStore s(L1Store::min_size(parts), parts);
        ASSERT_NE(s.store, nullptr);
        std::vector<int> count(parts, 0);
        for (int i = 0; i < 5000; i++) {
            Key k = make_key("p:" + std::to_string(i));
            uint32_t p = s->partition_of(k.hash);
            ASSERT_LT(p, parts);
            EXPECT_EQ(p, s->partition_of(k.hash));
            count[p]++;
        }
        for (uint32_t p = 0; p < parts; p++)
            EXPECT_GT(count[p], 5000 / int(parts) / 2) << "partition " << p << " of " << parts;
    }
}

TEST(L1StorePartitions, EvictionInOnePartitionLeavesOthersAlone)
{
    constexpr uint32_t kParts = 4;
    TestStore s(64 * 1024, kParts);
    ASSERT_NE(s.store, nullptr);
    std::vector<Key> others;
    for (uint32_t p = 1; p < kParts; p++)
        for (int i = 0; i < 5; i++) {
            others.push_back(key_in_partition(s.store, p, "other" + std::to_string(i)));
            ASSERT_EQ(put(s.store, others.back(), "kept"), PutStatus::Stored);
        }
    int stored = 0;
    for (int i = 0; stored < 500; i++) {
        Key k = make_key("hot:" + std::to_string(i));
        if (s->partition_of(k.hash) != 0)
            continue;
        ASSERT_EQ(put(s.store, k, std::string(300, 'h')), PutStatus::Stored);
        stored++;
    }
    EXPECT_GT(stats_of(s.store).evictions, 0u);
    for (const Key &k : others)
        EXPECT_EQ(lookup(s.store, k).value, "kept");
}

/* ------------------------------------------------------------------------ */
/* 11. concurrency                                                           */
/* ------------------------------------------------------------------------ */

uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

uint8_t payload_byte(uint32_t key, uint32_t version, size_t i)
{
    return uint8_t(key * 131u + version * 31u + uint32_t(i) * 7u);
}

/* [key u32][version u32][total length u32][payload][fnv1a of all before u64] */
std::string make_value(uint32_t key, uint32_t version, size_t payload)
{
    std::string v(12 + payload + 8, '\0');
    uint32_t len = uint32_t(v.size());
    std::memcpy(&v[0], &key, 4);
    std::memcpy(&v[4], &version, 4);
    std::memcpy(&v[8], &len, 4);
    for (size_t i = 0; i < payload; i++)
        v[12 + i] = char(payload_byte(key, version, i));
    uint64_t sum = fnv1a(reinterpret_cast<const uint8_t *>(v.data()), 12 + payload);
    std::memcpy(&v[12 + payload], &sum, 8);
    return v;
}

/* Empty string if value is a complete, untorn value for key. */
std::string check_value(const uint8_t *p, size_t n, uint32_t key, uint32_t &version)
{
    if (n < 20)
        return "value too short: " + std::to_string(n);
    uint32_t k, len;
    std::memcpy(&k, p, 4);
    std::memcpy(&version, p + 4, 4);
    std::memcpy(&len, p + 8, 4);
    if (k != key)
        return "value of key " + std::to_string(k) + " returned for key " + std::to_string(key);
    if (len != n)
        return "length field " + std::to_string(len) + " but " + std::to_string(n) + " bytes";
    size_t payload = n - 20;
    for (size_t i = 0; i < payload; i++)
        if (p[12 + i] != payload_byte(key, version, i))
            return "torn payload at byte " + std::to_string(i);
    uint64_t sum;
    std::memcpy(&sum, p + 12 + payload, 8);
    if (sum != fnv1a(p, 12 + payload))
        return "bad checksum";
    return "";
}

TEST(L1StoreConcurrency, ReadersUnderSharedLocksSeeOnlyCompleteCurrentValues)
{
    constexpr uint32_t kParts = 8;
    constexpr int kKeys = 2000;
    constexpr int kReaders = 4;
    constexpr int kWriters = 2;
    /* Readers run until the writers are done: at least kMinLookups, at most kMaxLookups. */
    constexpr int kMinLookups = 20000;
    constexpr int kMaxLookups = 2000000;
    constexpr int kWriterOps = 25000;
    constexpr int64_t kExpiryBase = 1'000'000'000;

    TestStore s(512 * 1024, kParts);
    ASSERT_NE(s.store, nullptr);
    std::unique_ptr<std::shared_mutex[]> locks(new std::shared_mutex[kParts]);
    std::vector<Key> keys;
    for (int i = 0; i < kKeys; i++)
        keys.push_back(scoped_key(CacheScope{1, 2}, "obj:" + std::to_string(i)));

    /* latest[k]: last version written for k, 0 if erased; guarded by k's partition lock. */
    std::vector<uint32_t> latest(kKeys, 0);
    std::atomic<uint32_t> next_version{0};
    std::atomic<uint64_t> puts{0}, reader_hits{0}, errors{0};
    std::mutex error_mutex;
    std::string first_error;
    auto report = [&](const std::string &msg) {
        errors++;
        std::lock_guard<std::mutex> g(error_mutex);
        if (first_error.empty())
            first_error = msg;
    };
    std::atomic<bool> go{false};
    std::atomic<int> writers_running{kWriters};
    std::atomic<uint64_t> lookups{0}, newest_seen{0};

    /* Start with every key present so readers have something to hit from the start. */
    for (uint32_t k = 0; k < uint32_t(kKeys); k++) {
        uint32_t v = ++next_version;
        std::string value = make_value(k, v, k % 700);
        ASSERT_EQ(s->put(keys[k].ref(), Fingerprint{k, v}, value.data(), value.size(),
                         kExpiryBase + v, 0),
                  PutStatus::Stored);
        latest[k] = v;
    }
    const uint32_t initial_versions = next_version.load();
    s->reset_counters();

    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; w++) {
        threads.emplace_back([&, w] {
            std::mt19937 rng(1000 + w);
            while (!go.load())
                std::this_thread::yield();
            /* Bounded by an op count and by time (readers may starve writers). */
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            for (int op = 0; op < kWriterOps; op++) {
                if ((op & 255) == 0 && std::chrono::steady_clock::now() > deadline)
                    break;
                uint32_t k = rng() % kKeys;
                const Key &key = keys[k];
                bool erase = rng() % 5 == 0;
                size_t payload = rng() % 1500;
                std::unique_lock<std::shared_mutex> lock(locks[s->partition_of(key.hash)]);
                if (erase) {
                    s->erase(key.ref());
                    latest[k] = 0;
                    continue;
                }
                /* Versions of one key grow in store order: taken under its lock. */
                uint32_t v = ++next_version;
                std::string value = make_value(k, v, payload);
                PutStatus st = s->put(key.ref(), Fingerprint{k, v}, value.data(), value.size(),
                                      kExpiryBase + v, 0);
                if (st != PutStatus::Stored) {
                    report("put failed");
                    continue;
                }
                latest[k] = v;
                puts++;
            }
            writers_running--;
        });
    }
    for (int r = 0; r < kReaders; r++) {
        threads.emplace_back([&, r] {
            std::mt19937 rng(2000 + r);
            Buffer buf;
            std::vector<uint32_t> last_seen(kKeys, 0);
            uint64_t hits = 0;
            while (!go.load())
                std::this_thread::yield();
            uint64_t newest = 0;
            int i = 0;
            for (; i < kMaxLookups && (i < kMinLookups || writers_running.load() > 0); i++) {
                if ((i & 63) == 0)
                    std::this_thread::yield(); /* let writers at the locks */
                uint32_t k = rng() % kKeys;
                const Key &key = keys[k];
                ValueSink sink = make_sink(&buf);
                LookupStatus st;
                {
                    std::shared_lock<std::shared_mutex> lock(locks[s->partition_of(key.hash)]);
                    st = s->lookup(key.ref(), 0, nullptr, sink);
                }
                if (st == LookupStatus::Miss)
                    continue;
                if (st != LookupStatus::Hit) {
                    report("unexpected lookup status");
                    continue;
                }
                hits++;
                uint32_t v = 0;
                std::string err =
                    check_value(static_cast<const uint8_t *>(sink.value), sink.length, k, v);
                if (!err.empty()) {
                    report(err);
                    continue;
                }
                if (buf.bytes.back() != kCanary)
                    report("lookup wrote past its allocation");
                if (sink.fingerprint != Fingerprint{k, v})
                    report("fingerprint does not belong to the value");
                if (sink.expires_at != kExpiryBase + v)
                    report("expiry does not belong to the value");
                if (v < last_seen[k])
                    report("version went backwards for key " + std::to_string(k));
                last_seen[k] = v;
                newest = std::max<uint64_t>(newest, v);
            }
            reader_hits += hits;
            lookups += uint64_t(i);
            uint64_t prev = newest_seen.load();
            while (newest > prev && !newest_seen.compare_exchange_weak(prev, newest)) {
            }
        });
    }
    go = true;
    for (auto &t : threads)
        t.join();

    EXPECT_EQ(errors.load(), 0u) << first_error;
    L1Stats st = stats_of(s.store);
    EXPECT_GE(lookups.load(), uint64_t(kReaders) * kMinLookups);
    EXPECT_EQ(st.hits + st.misses, lookups.load());
    EXPECT_GT(newest_seen.load(), initial_versions) << "readers never saw a writer's value";
    EXPECT_EQ(st.hits, reader_hits.load());
    EXPECT_EQ(st.sets, puts.load());
    EXPECT_GT(puts.load(), 1000u) << "writers made too little progress to test anything";
    EXPECT_GT(st.hits, 0u);
    EXPECT_GT(st.misses, 0u);
    EXPECT_GT(st.evictions, 0u) << "the test should run the store full";
    EXPECT_LE(st.bytes, st.capacity_bytes);

    /* Afterwards every key holds its last written version, or nothing. */
    uint64_t entries = 0, bytes = 0;
    for (uint32_t k = 0; k < uint32_t(kKeys); k++) {
        Got g = lookup(s.store, keys[k]);
        if (g.status == LookupStatus::Miss)
            continue;
        ASSERT_EQ(g.status, LookupStatus::Hit);
        uint32_t v = 0;
        ASSERT_EQ(check_value(reinterpret_cast<const uint8_t *>(g.value.data()), g.value.size(), k, v),
                  "");
        EXPECT_NE(latest[k], 0u) << "erased key " << k << " still present";
        EXPECT_EQ(v, latest[k]) << "stale version for key " << k;
        entries++;
        bytes += keys[k].bytes.size() + g.value.size();
    }
    st = stats_of(s.store);
    EXPECT_EQ(st.entries, entries);
    EXPECT_EQ(st.bytes, bytes);
}

}  // namespace
