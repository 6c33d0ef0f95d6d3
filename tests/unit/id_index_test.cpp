// The memory store's id index against a reference map, under hashes that
// collide on purpose: long probe runs, wrap-around at the end of the table,
// and erasures in the middle of runs are what open addressing gets wrong.
#include "memory/id_index.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

// Few distinct homes, all near the end of the table (wrap-around), and equal
// tags: every lookup must compare ids.
struct Clustering {
    std::uint64_t operator()(std::string_view id) const noexcept {
        std::uint64_t h = 0;
        for (const char c : id) h = h * 31 + static_cast<unsigned char>(c);
        return ~std::uint64_t{0} - (h % 8);
    }
};

template <class Hash>
void check_against_reference(std::uint32_t seed) {
    boong::detail::IdIndex<Hash> index;
    std::vector<std::string> keys;  // position -> id, as the store's log
    std::unordered_map<std::string, std::size_t> reference;
    auto id_at = [&](std::size_t at) -> std::string_view { return keys[at]; };
    std::mt19937 rng(seed);
    for (int op = 0; op < 20000; ++op) {
        const auto roll = rng() % 10;
        if (roll < 6 || reference.empty()) {
            // Insert a new id, or (sometimes) one already there.
            std::string id = "id-" + std::to_string(rng() % 3000);
            const std::size_t at = keys.size();
            keys.push_back(id);
            const auto existing = index.insert(id, at, id_at);
            const auto it = reference.find(id);
            if (it == reference.end()) {
                REQUIRE(existing == index.npos);
                reference.emplace(id, at);
            } else {
                REQUIRE(existing == it->second);
            }
        } else if (roll < 8) {
            // Erase a present id.
            auto it = reference.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(rng() % reference.size()));
            index.erase(it->first, id_at);
            reference.erase(it);
        } else {
            const std::string id = "id-" + std::to_string(rng() % 3000);
            const auto found = index.find(id, id_at);
            const auto it = reference.find(id);
            REQUIRE(found == (it == reference.end() ? index.npos : it->second));
        }
    }
    for (const auto& [id, at] : reference) REQUIRE(index.find(id, id_at) == at);
    for (int i = 0; i < 3000; ++i) {
        const std::string id = "id-" + std::to_string(i);
        if (!reference.contains(id)) REQUIRE(index.find(id, id_at) == index.npos);
    }
}

struct Spread {
    std::uint64_t operator()(std::string_view id) const noexcept {
        return std::hash<std::string_view>{}(id) * 0x9e3779b97f4a7c15ULL;
    }
};

}  // namespace

TEST_CASE("id index: inserts, erasures and lookups agree with a reference map", "[store][memory]") {
    for (std::uint32_t seed = 1; seed <= 3; ++seed) {
        check_against_reference<Clustering>(seed);
        check_against_reference<Spread>(seed);
    }
}
