// An open-addressing index from event id to a position, for the in-memory
// store. Private to Boong::boong.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace boong::detail {

// Event id -> index in the log, for duplicate checks and idempotent retries.
// Open addressing with linear probing over one array of 64-bit slots: a slot
// holds index + 1 (0: empty) in its low 40 bits and 24 more bits of the id's
// hash above them, so a probe reads the stored id (in the log) only on a
// likely match. A lookup costs about one cache miss where a node-based map
// costs three (bucket, node, key): with every event of every stream indexed,
// this was the largest cost of an append.
template <class Hash>
class IdIndex {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // The index stored for `id`, or npos. `id_at(index)` gives a stored id.
    template <class IdAt>
    std::size_t find(std::string_view id, const IdAt& id_at) const noexcept {
        if (slots_.empty()) return npos;
        const std::uint64_t h = Hash{}(id);
        for (std::size_t i = h & mask(); slots_[i] != 0; i = (i + 1) & mask()) {
            if (tag(slots_[i]) == tag_of(h) && id_at(index(slots_[i])) == id) return index(slots_[i]);
        }
        return npos;
    }

    // Adds id -> index unless the id is there: then returns its index (and
    // adds nothing), else npos.
    template <class IdAt>
    std::size_t insert(std::string_view id, std::size_t at, const IdAt& id_at) {
        if ((size_ + 1) * 2 > slots_.size()) grow(id_at);
        const std::uint64_t h = Hash{}(id);
        std::size_t i = h & mask();
        for (; slots_[i] != 0; i = (i + 1) & mask()) {
            if (tag(slots_[i]) == tag_of(h) && id_at(index(slots_[i])) == id) return index(slots_[i]);
        }
        slots_[i] = (tag_of(h) << index_bits) | (static_cast<std::uint64_t>(at) + 1);
        ++size_;
        return npos;
    }

    // Removes `id` (an append undone), shifting back the entries probed past
    // it so that no lookup stops early at the hole.
    template <class IdAt>
    void erase(std::string_view id, const IdAt& id_at) noexcept {
        if (slots_.empty()) return;
        std::size_t hole = Hash{}(id) & mask();
        for (;; hole = (hole + 1) & mask()) {
            if (slots_[hole] == 0) return;
            if (id_at(index(slots_[hole])) == id) break;
        }
        for (std::size_t j = (hole + 1) & mask(); slots_[j] != 0; j = (j + 1) & mask()) {
            const std::size_t home = Hash{}(id_at(index(slots_[j]))) & mask();
            // Move the entry at j into the hole unless its home lies cyclically in (hole, j].
            const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (stays) continue;
            slots_[hole] = slots_[j];
            hole = j;
        }
        slots_[hole] = 0;
        --size_;
    }

private:
    static constexpr int index_bits = 40;
    static constexpr std::uint64_t index_mask = (std::uint64_t{1} << index_bits) - 1;

    std::size_t mask() const noexcept { return slots_.size() - 1; }
    static std::uint64_t tag_of(std::uint64_t hash) noexcept { return hash >> index_bits; }
    static std::uint64_t tag(std::uint64_t slot) noexcept { return slot >> index_bits; }
    static std::size_t index(std::uint64_t slot) noexcept { return static_cast<std::size_t>((slot & index_mask) - 1); }

    template <class IdAt>
    void grow(const IdAt& id_at) {
        std::vector<std::uint64_t> old(std::max<std::size_t>(1024, slots_.size() * 2), 0);
        old.swap(slots_);
        for (const std::uint64_t slot : old) {
            if (slot == 0) continue;
            std::size_t i = Hash{}(id_at(index(slot))) & mask();
            while (slots_[i] != 0) i = (i + 1) & mask();
            slots_[i] = slot;
        }
    }

    std::vector<std::uint64_t> slots_;  // a power of two long, at most half full
    std::size_t size_ = 0;
};

}  // namespace boong::detail
