#include <boong/detail/validate.hpp>
#include <boong/store/memory.hpp>

#include "store/id_index.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace boong {

namespace {

// Hashes event ids. Appended ids are UUIDs (validate_append checks them), so
// the 36 bytes are read as five words and mixed, at a fraction of the cost of
// hashing them byte by byte; anything else takes the standard hash.
struct EventIdHash {
    std::uint64_t operator()(std::string_view id) const noexcept {
        if (id.size() != 36) return std::hash<std::string_view>{}(id) * 0x9e3779b97f4a7c15ULL;
        auto word = [&](std::size_t at) {
            std::uint64_t w;
            std::memcpy(&w, id.data() + at, 8);
            return w;
        };
        std::uint64_t h = 0x9e3779b97f4a7c15ULL;
        constexpr std::size_t offsets[] = {0, 8, 16, 24, 28};
        for (const std::size_t at : offsets) {
            h = (h ^ word(at)) * 0xbf58476d1ce4e5b9ULL;
            h ^= h >> 31;
        }
        return h;
    }
};

}  // namespace

struct MemoryEventStore::State {
    // An event as kept: the stream id is held once, by the stream.
    struct Stored {
        const std::string* stream = nullptr;  // the key in `streams`, which never moves
        std::int64_t version = 0;
        Clock::time_point stored_at{};
        EventData event;
    };

    // The global log: log[i] has global position i + 1. Kept in fixed chunks,
    // allocated one at a time, so that an event never moves once stored (the
    // ids index views into it) and appending costs no allocation in general
    // (a deque of events this size allocates a block for every two).
    class Log {
    public:
        static constexpr std::size_t chunk = 256;

        std::size_t size() const noexcept { return size_; }
        Stored& operator[](std::size_t i) noexcept { return chunks_[i / chunk][i % chunk]; }
        const Stored& operator[](std::size_t i) const noexcept { return chunks_[i / chunk][i % chunk]; }

        // The next slot, to be filled in place.
        Stored& grow() {
            if (size_ == chunks_.size() * chunk) chunks_.push_back(std::make_unique<Stored[]>(chunk));
            return (*this)[size_++];
        }
        // Drops the events from `n` on (an append undone).
        void truncate(std::size_t n) noexcept {
            while (size_ > n) (*this)[--size_] = Stored{};
        }

    private:
        std::vector<std::unique_ptr<Stored[]>> chunks_;
        std::size_t size_ = 0;
    };

    mutable std::mutex mutex;
    Log log;
    std::unordered_map<std::string, std::vector<std::size_t>> streams;  // stream -> indexes into log
    detail::IdIndex<EventIdHash> ids;
    std::unordered_map<std::string, Snapshot> snapshots;

    // The stored id at a log index, for the id index.
    auto id_at() const {
        return [this](std::size_t index) -> std::string_view { return log[index].event.event_id; };
    }

    RecordedEvent recorded(std::size_t index) const {
        const Stored& s = log[index];
        return RecordedEvent{*s.stream, s.version, static_cast<std::int64_t>(index) + 1, s.stored_at, s.event};
    }

    std::int64_t version_of(const std::string& stream) const {
        auto it = streams.find(stream);
        return it == streams.end() ? 0 : static_cast<std::int64_t>(it->second.size());
    }
};

MemoryEventStore::MemoryEventStore(executor_type ex) : ex_(std::move(ex)), state_(std::make_unique<State>()) {}
MemoryEventStore::~MemoryEventStore() = default;

AppendResult MemoryEventStore::append(const std::string& stream, ExpectedVersion expected,
                                      std::vector<EventData> events) {
    detail::validate_append(stream, expected, events);
    auto& s = *state_;
    std::lock_guard lock(s.mutex);
    auto existing = s.streams.find(stream);
    const std::int64_t current =
        existing == s.streams.end() ? 0 : static_cast<std::int64_t>(existing->second.size());

    // A retry of an append whose reply was lost: the same ids, already stored
    // in this stream in this order, right after the expected version.
    if (const auto first = s.ids.find(events.front().event_id, s.id_at()); first != detail::IdIndex<EventIdHash>::npos) {
        const State::Stored& stored = s.log[first];
        const std::int64_t start = stored.version;
        bool same = *stored.stream == stream && (expected.is_any() || expected.value() == start - 1) &&
                    start - 1 + static_cast<std::int64_t>(events.size()) <= current;
        const auto& indexes = s.streams.at(*stored.stream);
        for (std::size_t i = 0; same && i < events.size(); ++i) {
            same = s.log[indexes[static_cast<std::size_t>(start - 1) + i]].event.event_id == events[i].event_id;
        }
        if (same) {
            const auto first_index = indexes[static_cast<std::size_t>(start - 1)];
            const auto last_index = indexes[static_cast<std::size_t>(start - 1) + events.size() - 1];
            return {start - 1 + static_cast<std::int64_t>(events.size()), static_cast<std::int64_t>(first_index) + 1,
                    static_cast<std::int64_t>(last_index) + 1};
        }
    }
    if (!expected.is_any() && expected.value() != current) {
        throw ConcurrencyConflict(stream, expected.value(), current);
    }

    const bool created = existing == s.streams.end();
    auto entry = created ? s.streams.try_emplace(stream).first : existing;
    if (created) entry->second.reserve(16);
    auto& indexes = entry->second;
    const std::size_t indexed = indexes.size();
    const auto now = Clock::now();
    const std::size_t first_index = s.log.size();
    AppendResult result;
    result.first_position = static_cast<std::int64_t>(first_index) + 1;
    std::int64_t version = current;
    // Stored first, indexed by id as they go (one hash each); a reused id
    // undoes the whole append, so nothing of it stays.
    for (auto& e : events) {
        const std::size_t index = s.log.size();
        State::Stored& stored = s.log.grow();
        stored.stream = &entry->first;
        stored.version = ++version;
        stored.stored_at = now;
        stored.event = std::move(e);
        if (const auto at = s.ids.insert(stored.event.event_id, index, s.id_at()); at != detail::IdIndex<EventIdHash>::npos) {
            const State::Stored& other = s.log[at];
            Error error(errc::duplicate_event, "append to '" + stream + "': event id " + stored.event.event_id +
                                                   " is already stored as version " + std::to_string(other.version) +
                                                   " of '" + *other.stream + "'");
            for (std::size_t i = first_index; i < index; ++i) s.ids.erase(s.log[i].event.event_id, s.id_at());
            s.log.truncate(first_index);
            indexes.resize(indexed);
            if (created) s.streams.erase(entry);
            throw error;
        }
        indexes.push_back(index);
    }
    result.last_position = static_cast<std::int64_t>(s.log.size());
    result.next_expected_version = version;
    return result;
}

std::vector<RecordedEvent> MemoryEventStore::read_stream(const std::string& stream, std::int64_t from_version,
                                                         std::size_t max_count) const {
    detail::validate_stream_id(stream);
    detail::validate_read("read_stream '" + stream + "'", from_version, max_count);
    const auto& s = *state_;
    std::lock_guard lock(s.mutex);
    std::vector<RecordedEvent> out;
    auto it = s.streams.find(stream);
    if (it == s.streams.end()) return out;
    const auto& indexes = it->second;
    const auto begin = static_cast<std::size_t>(from_version - 1);
    for (std::size_t i = begin; i < indexes.size() && out.size() < max_count; ++i) out.push_back(s.recorded(indexes[i]));
    return out;
}

std::vector<RecordedEvent> MemoryEventStore::read_all(std::int64_t from_position, std::size_t max_count) const {
    detail::validate_read("read_all", from_position, max_count);
    const auto& s = *state_;
    std::lock_guard lock(s.mutex);
    std::vector<RecordedEvent> out;
    for (auto i = static_cast<std::size_t>(from_position - 1); i < s.log.size() && out.size() < max_count; ++i) {
        out.push_back(s.recorded(i));
    }
    return out;
}

void MemoryEventStore::save_snapshot(Snapshot snapshot) {
    detail::validate_snapshot(snapshot);
    auto& s = *state_;
    std::lock_guard lock(s.mutex);
    const auto current = s.version_of(snapshot.stream_id);
    if (snapshot.version > current) {
        throw Error(errc::invalid_argument, "snapshot of '" + snapshot.stream_id + "' at version " +
                                                std::to_string(snapshot.version) + " is ahead of the stream (version " +
                                                std::to_string(current) + ")");
    }
    auto [it, inserted] = s.snapshots.try_emplace(snapshot.stream_id);
    if (inserted || it->second.version <= snapshot.version) {
        if (snapshot.taken_at == Clock::time_point{}) snapshot.taken_at = Clock::now();
        it->second = std::move(snapshot);
    }
}

std::optional<Snapshot> MemoryEventStore::load_snapshot(const std::string& stream) const {
    detail::validate_stream_id(stream);
    const auto& s = *state_;
    std::lock_guard lock(s.mutex);
    auto it = s.snapshots.find(stream);
    if (it == s.snapshots.end()) return std::nullopt;
    return it->second;
}

std::int64_t MemoryEventStore::stream_version(const std::string& stream) const {
    std::lock_guard lock(state_->mutex);
    return state_->version_of(stream);
}

std::int64_t MemoryEventStore::last_position() const {
    std::lock_guard lock(state_->mutex);
    return static_cast<std::int64_t>(state_->log.size());
}

}  // namespace boong
