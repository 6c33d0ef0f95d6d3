#include <boong/detail/validate.hpp>
#include <boong/memory/store.hpp>

#include "memory/id_index.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <thread>
#include <atomic>
#include <vector>

namespace boong {

namespace {

// Hashes ids (event ids, stream ids) eight bytes at a time, mixing each word:
// a fraction of the cost of a byte-wise hash on UUIDs and names like
// "saga-<uuid>", and good enough spread for open addressing.
struct IdHash {
    std::uint64_t operator()(std::string_view id) const noexcept {
        std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ id.size();
        auto mix = [&h](std::uint64_t w) {
            h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
            h ^= h >> 31;
        };
        std::size_t at = 0;
        for (; at + 8 <= id.size(); at += 8) {
            std::uint64_t w;
            std::memcpy(&w, id.data() + at, 8);
            mix(w);
        }
        if (at < id.size()) {
            std::uint64_t w = 0;
            std::memcpy(&w, id.data() + at, id.size() - at);
            mix(w);
        }
        return h * 0x94d049bb133111ebULL ^ (h >> 29);
    }
};

}  // namespace

struct MemoryEventStore::State {
    // An event as kept: the stream id is held once, by the stream.
    struct Stream;
    struct Stored {
        const Stream* stream = nullptr;  // never moves (see streams)
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

    struct Stream {
        std::string id;
        std::vector<std::size_t> indexes;  // into the log, by version - 1
    };
    using Index = detail::IdIndex<IdHash>;

    mutable std::mutex mutex;
    Log log;
    Index ids;                   // event id -> index into the log
    std::deque<Stream> streams;  // in creation order; a deque never moves them
    Index stream_ids;            // stream id -> index into streams
    std::unordered_map<std::string, Snapshot> snapshots;
    // The inbox: consumer -> the message ids it processed.
    std::unordered_map<std::string, std::unordered_set<std::string>> inbox;
    // The thread inside a transaction (which holds `mutex`): its other calls
    // would deadlock, and are refused instead.
    std::atomic<std::thread::id> tx_thread{};

    std::unique_lock<std::mutex> lock(const char* what) const {
        if (tx_thread.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
            throw Error(errc::invalid_argument, std::string(what) +
                                                    ": called inside a transaction on this store (use the "
                                                    "transaction's *_in functions)");
        }
        return std::unique_lock(mutex);
    }

    // The ids at an index, for the indexes.
    auto event_id_at() const {
        return [this](std::size_t index) -> std::string_view { return log[index].event.event_id; };
    }
    auto stream_id_at() const {
        return [this](std::size_t index) -> std::string_view { return streams[index].id; };
    }

    template <class Self>
    static auto find_stream(Self& self, std::string_view id) {
        const auto at = self.stream_ids.find(id, self.stream_id_at());
        return at == Index::npos ? nullptr : &self.streams[at];
    }

    RecordedEvent recorded(std::size_t index) const {
        const Stored& s = log[index];
        return RecordedEvent{s.stream->id, s.version, static_cast<std::int64_t>(index) + 1, s.stored_at, s.event};
    }

    // The store's operations, with it held.
    AppendResult append(const std::string& stream, ExpectedVersion expected, std::vector<EventData> events);
    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) const;

    std::int64_t version_of(std::string_view stream) const {
        const Stream* found = find_stream(*this, stream);
        return found ? static_cast<std::int64_t>(found->indexes.size()) : 0;
    }
};

MemoryEventStore::MemoryEventStore(executor_type ex) : ex_(std::move(ex)), state_(std::make_unique<State>()) {}
MemoryEventStore::~MemoryEventStore() = default;

AppendResult MemoryEventStore::append(const std::string& stream, ExpectedVersion expected,
                                      std::vector<EventData> events) {
    auto lock = state_->lock("append");
    return state_->append(stream, expected, std::move(events));
}

AppendResult MemoryEventStore::State::append(const std::string& stream, ExpectedVersion expected,
                                             std::vector<EventData> events) {
    auto& s = *this;
    // The id index's slots are the append's cache misses: fetched while the
    // events are validated (validation under the lock costs nothing here: an
    // in-memory store serves tests and demos, not contended writers).
    for (const auto& e : events) s.ids.prefetch(e.event_id);
    detail::validate_append(stream, expected, events);
    State::Stream* existing = State::find_stream(s, stream);
    const std::int64_t current = existing ? static_cast<std::int64_t>(existing->indexes.size()) : 0;

    // A retry of an append whose reply was lost: the same ids, already stored
    // in this stream in this order, right after the expected version.
    if (const auto first = s.ids.find(events.front().event_id, s.event_id_at()); first != State::Index::npos) {
        const State::Stored& stored = s.log[first];
        const std::int64_t start = stored.version;
        bool same = stored.stream == existing && (expected.is_any() || expected.value() == start - 1) &&
                    start - 1 + static_cast<std::int64_t>(events.size()) <= current;
        const auto& indexes = stored.stream->indexes;
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

    const bool created = existing == nullptr;
    if (created) {
        State::Stream& fresh = s.streams.emplace_back();
        fresh.id = stream;
        fresh.indexes.reserve(16);
        s.stream_ids.insert(fresh.id, s.streams.size() - 1, s.stream_id_at());
    }
    State::Stream& entry = created ? s.streams.back() : *existing;
    auto& indexes = entry.indexes;
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
        stored.stream = &entry;
        stored.version = ++version;
        stored.stored_at = now;
        stored.event = std::move(e);
        if (const auto at = s.ids.insert(stored.event.event_id, index, s.event_id_at()); at != State::Index::npos) {
            const State::Stored& other = s.log[at];
            Error error(errc::duplicate_event, "append to '" + stream + "': event id " + stored.event.event_id +
                                                   " is already stored as version " + std::to_string(other.version) +
                                                   " of '" + other.stream->id + "'");
            for (std::size_t i = first_index; i < index; ++i) s.ids.erase(s.log[i].event.event_id, s.event_id_at());
            s.log.truncate(first_index);
            indexes.resize(indexed);
            if (created) {
                s.stream_ids.erase(entry.id, s.stream_id_at());
                s.streams.pop_back();
            }
            throw error;
        }
        indexes.push_back(index);
    }
    result.last_position = static_cast<std::int64_t>(s.log.size());
    result.next_expected_version = version;
    return result;
}

std::vector<RecordedEvent> MemoryEventStore::State::read_stream(const std::string& stream, std::int64_t from_version,
                                                                std::size_t max_count) const {
    const auto& s = *this;
    std::vector<RecordedEvent> out;
    const State::Stream* found = State::find_stream(s, stream);
    if (found == nullptr) return out;
    const auto& indexes = found->indexes;
    const auto begin = static_cast<std::size_t>(from_version - 1);
    for (std::size_t i = begin; i < indexes.size() && out.size() < max_count; ++i) out.push_back(s.recorded(indexes[i]));
    return out;
}

std::vector<RecordedEvent> MemoryEventStore::read_stream(const std::string& stream, std::int64_t from_version,
                                                         std::size_t max_count) const {
    detail::validate_stream_id(stream);
    detail::validate_read("read_stream '" + stream + "'", from_version, max_count);
    auto lock = state_->lock("read_stream");
    return state_->read_stream(stream, from_version, max_count);
}

std::vector<RecordedEvent> MemoryEventStore::read_all(std::int64_t from_position, std::size_t max_count) const {
    detail::validate_read("read_all", from_position, max_count);
    const auto& s = *state_;
    auto lock = s.lock("read_all");
    std::vector<RecordedEvent> out;
    for (auto i = static_cast<std::size_t>(from_position - 1); i < s.log.size() && out.size() < max_count; ++i) {
        out.push_back(s.recorded(i));
    }
    return out;
}

void MemoryEventStore::save_snapshot(Snapshot snapshot) {
    detail::validate_snapshot(snapshot);
    auto& s = *state_;
    auto lock = s.lock("save_snapshot");
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
    auto lock = s.lock("load_snapshot");
    auto it = s.snapshots.find(stream);
    if (it == s.snapshots.end()) return std::nullopt;
    return it->second;
}

std::int64_t MemoryEventStore::stream_version(const std::string& stream) const {
    auto lock = state_->lock("stream_version");
    return state_->version_of(stream);
}

std::int64_t MemoryEventStore::last_position() const {
    auto lock = state_->lock("last_position");
    return static_cast<std::int64_t>(state_->log.size());
}

// Transactions

MemoryEventStore::Transaction::Transaction(MemoryEventStore& store) : store_(store) {
    auto& s = *store.state_;
    auto lock = s.lock("transact");
    s.tx_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
    log_size_ = s.log.size();
    stream_count_ = s.streams.size();
    lock.release();  // held until commit or rollback
}

MemoryEventStore::Transaction::~Transaction() {
    if (!done_) rollback();
}

void MemoryEventStore::Transaction::commit() noexcept {
    auto& s = *store_.state_;
    done_ = true;
    s.tx_thread.store(std::thread::id{}, std::memory_order_relaxed);
    s.mutex.unlock();
}

void MemoryEventStore::Transaction::rollback() noexcept {
    auto& s = *store_.state_;
    done_ = true;
    // The events appended, latest first: out of the id index and their streams.
    for (std::size_t i = s.log.size(); i > log_size_; --i) {
        auto& stored = s.log[i - 1];
        s.ids.erase(stored.event.event_id, s.event_id_at());
        const_cast<State::Stream*>(stored.stream)->indexes.pop_back();
    }
    while (s.streams.size() > stream_count_) {
        s.stream_ids.erase(s.streams.back().id, s.stream_id_at());
        s.streams.pop_back();
    }
    s.log.truncate(log_size_);
    for (const auto& [consumer, id] : recorded_) s.inbox[consumer].erase(id);
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
        try {
            (*it)();
        } catch (...) {
            // An undo that throws cannot stop the others (nor the unlock).
        }
    }
    s.tx_thread.store(std::thread::id{}, std::memory_order_relaxed);
    s.mutex.unlock();
}

AppendResult MemoryEventStore::append_in(Transaction& tx, const std::string& stream, ExpectedVersion expected,
                                         std::vector<EventData> events) {
    check_transaction(tx);
    return state_->append(stream, expected, std::move(events));
}

std::vector<StreamAppendOutcome> MemoryEventStore::append_many_in(Transaction& tx, std::vector<StreamAppend> appends) {
    check_transaction(tx);
    detail::require_distinct_streams(appends);
    std::vector<StreamAppendOutcome> out(appends.size());
    for (std::size_t i = 0; i < appends.size(); ++i) {
        auto& a = appends[i];
        try {
            out[i].result = state_->append(a.stream, a.expected, std::move(a.events));
        } catch (const Error&) {
            out[i].error = std::current_exception();  // checked before anything is written
        }
    }
    return out;
}

std::vector<RecordedEvent> MemoryEventStore::read_stream_in(Transaction& tx, const std::string& stream,
                                                            std::int64_t from_version, std::size_t max_count) const {
    check_transaction(tx);
    detail::validate_stream_id(stream);
    detail::validate_read("read_stream '" + stream + "'", from_version, max_count);
    return state_->read_stream(stream, from_version, max_count);
}

std::vector<std::vector<RecordedEvent>> MemoryEventStore::read_streams_in(
    Transaction& tx, const std::vector<std::string>& streams) const {
    check_transaction(tx);
    for (const auto& s : streams) detail::validate_stream_id(s);
    std::vector<std::vector<RecordedEvent>> out;
    out.reserve(streams.size());
    for (const auto& s : streams) out.push_back(state_->read_stream(s, 1, std::numeric_limits<std::size_t>::max()));
    return out;
}

bool MemoryEventStore::processed_in(Transaction& tx, const std::string& consumer, const std::string& message_id) const {
    check_transaction(tx);
    detail::validate_inbox_entry(consumer, message_id);
    const auto it = state_->inbox.find(consumer);
    return it != state_->inbox.end() && it->second.contains(message_id);
}

bool MemoryEventStore::record_processed_in(Transaction& tx, const std::string& consumer,
                                           const std::string& message_id) {
    check_transaction(tx);
    detail::validate_inbox_entry(consumer, message_id);
    if (!state_->inbox[consumer].insert(message_id).second) return false;
    tx.recorded_.emplace_back(consumer, message_id);
    return true;
}

std::vector<bool> MemoryEventStore::processed_many_in(Transaction& tx, const std::string& consumer,
                                                     const std::vector<std::string>& message_ids) const {
    detail::validate_inbox_entries(consumer, message_ids, false);
    std::vector<bool> out;
    out.reserve(message_ids.size());
    for (const auto& id : message_ids) out.push_back(processed_in(tx, consumer, id));
    return out;
}

std::vector<bool> MemoryEventStore::record_processed_many_in(Transaction& tx, const std::string& consumer,
                                                            const std::vector<std::string>& message_ids) {
    detail::validate_inbox_entries(consumer, message_ids, true);  // all or nothing
    std::vector<bool> out;
    out.reserve(message_ids.size());
    for (const auto& id : message_ids) out.push_back(record_processed_in(tx, consumer, id));
    return out;
}

void MemoryEventStore::check_transaction(const Transaction& tx) const {
    if (&tx.store_ != this || tx.done_) {
        throw Error(errc::invalid_argument, "a transaction of another store, or one that has ended");
    }
}

}  // namespace boong
