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
// Open addressing with linear probing over one array of slots, each holding
// an id's full hash and its index: a probe reads the stored id (in the log)
// only when the hashes match, and growing never reads the log at all. A lookup
// costs about one cache miss where a node-based map costs three (bucket, node,
// key): with every event of every stream indexed, that was the largest cost of
// an append.
template <class Hash>
class IdIndex {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // The index stored for `id`, or npos. `id_at(index)` gives a stored id.
    template <class IdAt>
    std::size_t find(std::string_view id, const IdAt& id_at) const noexcept {
        if (slots_.empty()) return npos;
        const Slot& slot = slots_[probe(id, Hash{}(id), id_at)];
        return slot.at == 0 ? npos : slot.at - 1;
    }

    // Starts loading the slot where a lookup of `id` begins.
    void prefetch(std::string_view id) const noexcept {
        if (!slots_.empty()) __builtin_prefetch(&slots_[Hash{}(id) & mask()]);
    }

    // Adds id -> index unless the id is there: then returns its index (and
    // adds nothing), else npos.
    template <class IdAt>
    std::size_t insert(std::string_view id, std::size_t index, const IdAt& id_at) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        const std::uint64_t h = Hash{}(id);
        Slot& slot = slots_[probe(id, h, id_at)];
        if (slot.at != 0) return slot.at - 1;
        slot = Slot{h, index + 1};
        ++size_;
        return npos;
    }

    // Removes `id` (an append undone), shifting back the entries probed past
    // it so that no lookup stops early at the hole.
    template <class IdAt>
    void erase(std::string_view id, const IdAt& id_at) noexcept {
        if (slots_.empty()) return;
        std::size_t hole = probe(id, Hash{}(id), id_at);
        if (slots_[hole].at == 0) return;
        for (std::size_t j = (hole + 1) & mask(); slots_[j].at != 0; j = (j + 1) & mask()) {
            const std::size_t home = slots_[j].hash & mask();
            // The entry at j moves into the hole unless its home lies cyclically in (hole, j].
            const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (stays) continue;
            slots_[hole] = slots_[j];
            hole = j;
        }
        slots_[hole] = Slot{};
        --size_;
    }

private:
    struct Slot {
        std::uint64_t hash = 0;
        std::size_t at = 0;  // index + 1; 0: empty
    };

    std::size_t mask() const noexcept { return slots_.size() - 1; }

    // The slot holding `id` (hash `h`), or the empty slot where it would go.
    template <class IdAt>
    std::size_t probe(std::string_view id, std::uint64_t h, const IdAt& id_at) const noexcept {
        std::size_t i = h & mask();
        while (slots_[i].at != 0 && !(slots_[i].hash == h && id_at(slots_[i].at - 1) == id)) i = (i + 1) & mask();
        return i;
    }

    void grow() {
        std::vector<Slot> old(std::max<std::size_t>(1024, slots_.size() * 2));
        old.swap(slots_);
        for (const Slot& slot : old) {
            if (slot.at == 0) continue;
            std::size_t i = slot.hash & mask();
            while (slots_[i].at != 0) i = (i + 1) & mask();
            slots_[i] = slot;
        }
    }

    std::vector<Slot> slots_;  // a power of two long, at most half full
    std::size_t size_ = 0;
};

}  // namespace boong::detail
