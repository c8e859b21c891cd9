// FlatMap64 against std::unordered_map on the same random operations, across growth.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "util/flat_map.h"

using namespace pensieve;

TEST(FlatMap64, AgreesWithUnorderedMapAcrossGrowth) {
    FlatMap64 flat;
    std::unordered_map<uint64_t, uint32_t> oracle;
    std::mt19937_64 rng(3);
    for (uint32_t i = 0; i < 200000; ++i) {
        // Frame-like keys (small position << 32 | parent) and some arbitrary ones.
        const uint64_t key = i % 5 ? (uint64_t(rng() % 50) << 32) | (rng() % 40000) : rng() >> 1;
        bool inserted = false;
        uint32_t& v = flat.get_or_insert(key, i, inserted);
        const auto [it, fresh] = oracle.try_emplace(key, i);
        ASSERT_EQ(inserted, fresh) << key;
        ASSERT_EQ(v, it->second) << key;
        if (i % 7 == 0) v = it->second = i + 1;  // writes through the reference stick
    }
    EXPECT_EQ(flat.size(), oracle.size());
    for (const auto& [k, v] : oracle) {
        const uint32_t* got = flat.find(k);
        ASSERT_NE(got, nullptr) << k;
        EXPECT_EQ(*got, v) << k;
    }
    EXPECT_EQ(flat.find(uint64_t(1) << 62), nullptr);
    flat.clear();
    EXPECT_EQ(flat.size(), 0u);
    EXPECT_EQ(flat.find(oracle.begin()->first), nullptr);
}
