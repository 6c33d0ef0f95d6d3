// Group commit: appends that arrive together are written by one call of the
// append function, in one transaction, so one fsync serves many events. Each
// append still gets its own verdict: a conflict or a duplicate in one never
// fails its neighbours (the function checks every append before writing any;
// see schema.cpp).
#pragma once

#include "pool.hpp"

#include <boong/detail/erased_handler.hpp>
#include <boong/event.hpp>

#include <pqxx/row>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace boong::pg {

// The versions this store's own appends left streams at. A stream is at
// least there (events are never deleted), so an append expecting exactly that
// version needs no version probe on the server: if another writer got in
// first, the unique index on (stream_id, version) refuses the insert, and the
// batch runs again carefully. Most appends qualify: a saga's stream, or an
// aggregate's, is written by one process, one append after the other.
// Bounded: forgotten wholesale when full (then the probes come back until
// the streams are seen again).
class StreamHeads {
public:
    explicit StreamHeads(std::size_t capacity = 32768) : capacity_(capacity) {}

    bool known(const std::string& stream, ExpectedVersion expected) const;
    void record(const std::string& stream, std::int64_t version);

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::int64_t> heads_;
    std::size_t capacity_;
};

// One append waiting for its batch. Built (and its JSON serialized) by the
// caller's thread, so the batch only has to concatenate.
struct AppendRequest {
    // Serializes `events` (moving their ids out). The handler is set after.
    // `head_known`: the stream is known to be at `expected` (see StreamHeads).
    AppendRequest(std::string stream, ExpectedVersion expected, std::vector<EventData>& events,
                  bool head_known = false);

    std::string stream;
    ExpectedVersion expected;
    bool head_known;
    std::vector<std::string> event_ids;
    std::string json;  // {"s":stream,"x":expected|null[,"k":1],"e":[...]} as the append function reads it
    detail::ErasedHandler<AppendResult> handler;
    std::chrono::steady_clock::time_point arrived;

    std::size_t size() const noexcept { return event_ids.size(); }
    std::string describe() const { return "append to '" + stream + "'"; }
};

// What a verdict row of the append function means for `r`: null when it
// succeeded (written or replayed), else the error to complete it with.
std::exception_ptr verdict_error(const AppendRequest& r, const pqxx::row& row);

struct BatchSettings {
    std::size_t max_events = 256;            // events per transaction, at most (one append may exceed it alone)
    // A batch that holds this many events goes without waiting for more
    // company: its commit is shared widely enough, and waiting longer only
    // adds latency (bench_postgres, 64 appenders, three rounds: 36-38 k
    // appends/s at 32, 30-32 k at 64, 31-35 k at 16). At most max_events.
    std::size_t enough_events = 32;
    // How long the first append waits for company (while another batch is
    // in flight); the batch goes sooner when no append arrived for an
    // eighth of it: company comes in bursts (the appenders the last commit
    // released), and waiting past the burst only adds latency.
    std::chrono::microseconds delay{500};
    std::size_t max_in_flight = 2;           // batch transactions submitted at once
};

class Batcher {
public:
    Batcher(Pool& pool, BatchSettings settings, std::shared_ptr<Counters> counters);
    ~Batcher();
    Batcher(const Batcher&) = delete;
    Batcher& operator=(const Batcher&) = delete;

    void start();  // does nothing once stopped
    // Stops forming batches and fails the appends still waiting with
    // operation_aborted. Batches already handed to the pool finish there.
    void stop();

    void submit(std::shared_ptr<AppendRequest> request);

    // Whether an append to `stream` expecting `expected` may skip the version probe.
    bool head_known(const std::string& stream, ExpectedVersion expected) const {
        return heads_->known(stream, expected);
    }

    // For the request's cancellation slot: takes it out of the queue if it is
    // not in a batch yet and fails it with operation_aborted.
    std::function<void(boost::asio::cancellation_type)> canceller(const std::shared_ptr<AppendRequest>& request) const;

    struct Shared;

private:
    void loop();

    Pool& pool_;
    BatchSettings settings_;
    std::shared_ptr<Counters> counters_;
    std::shared_ptr<Shared> shared_;
    std::shared_ptr<StreamHeads> heads_ = std::make_shared<StreamHeads>();
    std::thread thread_;
};

}  // namespace boong::pg
