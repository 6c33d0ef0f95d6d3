#include "batcher.hpp"

#include "json_text.hpp"

#include "rows.hpp"
#include "schema.hpp"

#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <algorithm>
#include <charconv>

namespace boong::pg {
namespace {

// A batch that still hits a unique violation when run carefully (another
// process committed the same stream version or event id between the batch's
// checks and its insert) is re-run one append at a time, each at most this
// often: a re-run sees the other write and answers conflict, duplicate or replay.
constexpr int kAloneAttempts = 3;

enum class Refusal { none, unique, data };

// Whether the server refused something about one append rather than the
// batch or the connection: a unique violation, bad data (class 22), a limit
// (class 54: too deep, too big). Then the batch is split so that only the
// append at fault fails.
Refusal refusal_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const pqxx::sql_error& s) {
        const std::string& state = s.sqlstate();
        if (state == "23505") return Refusal::unique;
        if (state.starts_with("22") || state.starts_with("54")) return Refusal::data;
        return Refusal::none;
    } catch (...) {
        return Refusal::none;
    }
}


}  // namespace

bool StreamHeads::known(const std::string& stream, ExpectedVersion expected) const {
    if (expected.is_any()) return false;
    std::lock_guard lock(mutex_);
    const auto it = heads_.find(stream);
    return it != heads_.end() && it->second == expected.value();
}

void StreamHeads::record(const std::string& stream, std::int64_t version) {
    std::lock_guard lock(mutex_);
    auto it = heads_.find(stream);
    if (it != heads_.end()) {
        it->second = std::max(it->second, version);
        return;
    }
    if (heads_.size() >= capacity_) heads_.clear();
    heads_.emplace(stream, version);
}

AppendRequest::AppendRequest(std::string s, ExpectedVersion e, std::vector<EventData>& events, bool known)
    : stream(std::move(s)), expected(e), head_known(known && !e.is_any()), arrived(std::chrono::steady_clock::now()) {
    event_ids.reserve(events.size());
    std::size_t estimate = 64 + stream.size();
    for (const auto& ev : events) estimate += 400 + ev.type.size();
    json.reserve(estimate);
    // Written straight from the values (no JSON documents built, no dump()):
    // on the caller's thread, which shares the machine with the server.
    detail::JsonSink out(json);
    out.put(R"({"s":)");
    detail::write_json_string(out, stream);
    out.put(R"(,"x":)");
    if (expected.is_any()) {
        out.put("null");
    } else {
        detail::write_json_integer(out, expected.value());
    }
    if (head_known) out.put(R"(,"k":1)");
    out.put(R"(,"e":[)");
    for (std::size_t i = 0; i < events.size(); ++i) {
        auto& ev = events[i];
        if (i) out.put(',');
        out.put(R"({"i":)");
        detail::write_json_string(out, ev.event_id);
        out.put(R"(,"t":)");
        detail::write_json_string(out, ev.type);
        out.put(R"(,"v":)");
        detail::write_json_integer(out, ev.schema_version);
        out.put(R"(,"p":)");
        detail::write_json(out, ev.payload);
        out.put(R"(,"m":)");
        detail::write_metadata(out, ev.metadata);
        out.put('}');
        event_ids.push_back(std::move(ev.event_id));
    }
    out.put("]}");
    out.flush();
}

std::exception_ptr verdict_error(const AppendRequest& r, const pqxx::row& row) {
    const std::string_view verdict = row[1].c_str();
    if (verdict == "ok" || verdict == "replay") return nullptr;
    if (verdict == "conflict") {
        return std::make_exception_ptr(ConcurrencyConflict(r.stream, r.expected.value(), to_int64(row[2])));
    }
    if (verdict == "duplicate") {
        return std::make_exception_ptr(Error(errc::duplicate_event, "append to '" + r.stream + "': event id " +
                                                                        row[6].c_str() + " is already stored as version " +
                                                                        row[8].c_str() + " of '" + row[7].c_str() + "'"));
    }
    return std::make_exception_ptr(
        Error(errc::protocol_error, r.describe() + ": unknown verdict '" + std::string(verdict) + "'"));
}

struct Batcher::Shared {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::shared_ptr<AppendRequest>> pending;
    std::size_t pending_events = 0;
    std::unordered_set<std::string> busy_streams;  // streams with an append in a batch in flight
    std::size_t in_flight = 0;
    bool blocked = false;  // everything pending waits for a stream in flight
    bool stopping = false;
    std::shared_ptr<Counters> counters;

    // A batch has finished (whatever its outcome): its streams are free again.
    void done(const std::vector<std::shared_ptr<AppendRequest>>& batch) {
        {
            std::lock_guard lock(mutex);
            --in_flight;
            for (const auto& r : batch) busy_streams.erase(r->stream);
            blocked = false;
        }
        wake.notify_one();
    }
};

namespace {

// One group-commit transaction: a call of the append function with every
// append of the batch.
class BatchJob final : public Job {
public:
    BatchJob(std::vector<std::shared_ptr<AppendRequest>> requests, std::weak_ptr<Batcher::Shared> batcher,
             std::shared_ptr<Counters> counters, std::shared_ptr<StreamHeads> heads, const ConnectTarget& target)
        : requests_(std::move(requests)),
          batcher_(std::move(batcher)),
          counters_(std::move(counters)),
          heads_(std::move(heads)),
          target_(target) {}

    // Releases the batch's streams however the job ended (ran, failed, or
    // dropped at shutdown).
    ~BatchJob() override {
        if (auto b = batcher_.lock()) b->done(requests_);
    }

    // The group commit, told to the observer when it ends without an error
    // of its own (each append has its verdict).
    void run(Session& session) override {
        if (!counters_->observer) {
            run_batch(session);
            return;
        }
        const auto began = std::chrono::steady_clock::now();
        run_batch(session);
        std::size_t events = 0;
        for (const auto& r : requests_) events += r->size();
        detail::observe(counters_->observer, &Observer::appended, events, std::chrono::steady_clock::now() - began);
    }

    void run_batch(Session& session) {
        std::exception_ptr error;
        // First without checking event ids (the unique index does, at the
        // insert); a unique violation then means an id is stored already (a
        // replay or a duplicate, which the careful form tells apart and
        // answers) or a concurrent writer got in first.
        for (const bool careful : {false, true}) {
            try {
                if (!careful && all_heads_known()) {
                    call_known(session);
                } else {
                    call(session, requests_, careful);
                }
                return;
            } catch (...) {
                error = std::current_exception();
            }
            if (refusal_of(error) != Refusal::unique) break;
        }
        const Refusal refusal = refusal_of(error);
        if (refusal == Refusal::none) std::rethrow_exception(error);
        if (refusal == Refusal::unique) {
            spdlog::debug("postgres: an append batch collided with a concurrent writer; re-running its {} append(s) "
                          "one by one",
                          requests_.size());
        }
        if (requests_.size() == 1 && refusal == Refusal::data) {
            requests_.front()->handler.complete(translate(error, target_, requests_.front()->describe(), true).error);
            return;
        }
        // Re-run each append alone (each sees what is committed by then), so
        // that only the one at fault fails.
        if (requests_.size() > 1) Counters::add(counters_->batch_splits);
        for (auto& r : requests_) {
            for (int attempt = 1; r->handler; ++attempt) {
                try {
                    call(session, {r}, true);
                } catch (...) {
                    auto e = std::current_exception();
                    const Refusal alone = refusal_of(e);
                    if (alone == Refusal::none) throw;
                    if (alone == Refusal::data) {
                        r->handler.complete(translate(e, target_, r->describe(), true).error);
                    } else if (attempt == kAloneAttempts) {
                        r->handler.complete(std::make_exception_ptr(Error(
                            errc::protocol_error,
                            r->describe() + ": unique violation on " + std::to_string(kAloneAttempts) +
                                " attempts; is something writing to the events table without the append "
                                "function?")));
                    }
                }
            }
        }
    }

    void fail(std::exception_ptr error) noexcept override {
        for (auto& r : requests_) {
            try {
                if (r->handler) r->handler.complete(error);
            } catch (...) {
                // Out of memory while posting: the handler's destructor aborts it.
            }
        }
    }

    std::string describe() const override {
        return requests_.size() == 1 ? requests_.front()->describe()
                                     : "append batch of " + std::to_string(requests_.size()) + " appends";
    }
    bool appends() const noexcept override { return true; }

private:
    static std::string document(const std::vector<std::shared_ptr<AppendRequest>>& batch) {
        std::size_t bytes = 2;
        for (const auto& r : batch) bytes += r->json.size() + 1;
        std::string doc;
        doc.reserve(bytes);
        doc += '[';
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (i) doc += ',';
            doc += batch[i]->json;
        }
        doc += ']';
        return doc;
    }

    // Runs `statement` with `args` on its own, in autocommit.
    template <class... Args>
    static pqxx::result exec(Session& session, const char* statement, const Args&... args) {
        try {
            pqxx::nontransaction tx(session.connection(), "boong-append");
            return tx.exec_prepared(statement, args...);
        } catch (const pqxx::sql_error&) {
            // The functions release their session lock on every error they
            // see; this also covers one raised while releasing. A no-op when
            // nothing is held.
            try {
                pqxx::nontransaction tx(session.connection(), "boong-unlock");
                tx.exec("SELECT pg_catalog.pg_advisory_unlock_all()");
            } catch (...) {
                // The connection is gone: so is the lock.
            }
            throw;
        }
    }

    bool all_heads_known() const {
        return std::all_of(requests_.begin(), requests_.end(), [](const auto& r) { return r->head_known; });
    }

    // Every append expects the version its stream is known to be at: the
    // fast form, which only inserts (a unique violation sends the batch to
    // the careful form) and returns the first position.
    void call_known(Session& session) {
        std::string offsets = "{";
        std::int64_t events = 0;
        char digits[24];
        for (const auto& r : requests_) {
            if (events) offsets += ',';
            offsets.append(digits, std::to_chars(digits, digits + sizeof digits, events).ptr);
            events += static_cast<std::int64_t>(r->size());
        }
        offsets += '}';
        const auto rows = exec(session, kAppendKnownStatement, document(requests_), offsets, events);
        if (rows.size() != 1 || rows[0].size() != 1 || rows[0][0].is_null()) {
            throw Error(errc::protocol_error, "the known-version append function returned no first position");
        }
        Counters::add(counters_->append_transactions);
        Counters::add(counters_->known_version_transactions);
        std::int64_t position = to_int64(rows[0][0]);
        for (auto& r : requests_) {
            const auto n = static_cast<std::int64_t>(r->size());
            succeed(*r, {r->expected.value() + n, position, position + n - 1}, /*written=*/true);
            position += n;
        }
    }

    // `r` is stored: written now, or (a replay) by an earlier call.
    void succeed(AppendRequest& r, const AppendResult& result, bool written) {
        Counters::add(counters_->appends);
        if (written) {
            Counters::add(counters_->events_written, r.size());
        } else {
            Counters::add(counters_->replays);
        }
        heads_->record(r.stream, result.next_expected_version);
        r.handler.complete(nullptr, result);
    }

    void call(Session& session, const std::vector<std::shared_ptr<AppendRequest>>& batch, bool careful) {
        const pqxx::result rows = exec(session, kAppendStatement, document(batch), careful);
        if (rows.size() != batch.size()) {
            throw Error(errc::protocol_error, "the append function returned " + std::to_string(rows.size()) +
                                                  " verdicts for " + std::to_string(batch.size()) + " appends");
        }
        Counters::add(counters_->append_transactions);
        for (const auto& row : rows) {
            const auto index = static_cast<std::size_t>(to_int64(row[0]));
            if (index >= batch.size()) throw Error(errc::protocol_error, "the append function returned a bad index");
            complete(*batch[index], row);
        }
    }

    void complete(AppendRequest& r, const pqxx::row& row) {
        const std::string_view verdict = row[1].c_str();
        auto error = verdict_error(r, row);
        if (!error) {
            succeed(r, {to_int64(row[3]), to_int64(row[4]), to_int64(row[5])}, verdict == "ok");
            return;
        }
        if (verdict == "conflict") Counters::add(counters_->conflicts);
        if (verdict == "duplicate") Counters::add(counters_->duplicates);
        r.handler.complete(std::move(error));
    }

    std::vector<std::shared_ptr<AppendRequest>> requests_;
    std::weak_ptr<Batcher::Shared> batcher_;
    std::shared_ptr<Counters> counters_;
    std::shared_ptr<StreamHeads> heads_;
    const ConnectTarget& target_;  // the pool's: outlives every job
};

}  // namespace

Batcher::Batcher(Pool& pool, BatchSettings settings, std::shared_ptr<Counters> counters)
    : pool_(pool), settings_(settings), counters_(std::move(counters)), shared_(std::make_shared<Shared>()) {
    settings_.max_events = std::max<std::size_t>(settings_.max_events, 1);
    settings_.enough_events = std::clamp<std::size_t>(settings_.enough_events, 1, settings_.max_events);
    settings_.max_in_flight = std::max<std::size_t>(settings_.max_in_flight, 1);
    shared_->counters = counters_;
}

Batcher::~Batcher() { stop(); }

void Batcher::start() {
    std::lock_guard lock(shared_->mutex);
    if (shared_->stopping || thread_.joinable()) return;
    thread_ = std::thread([this] { loop(); });
}

void Batcher::stop() {
    std::deque<std::shared_ptr<AppendRequest>> pending;
    std::thread thread;
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
        pending.swap(shared_->pending);
        shared_->pending_events = 0;
        thread.swap(thread_);
    }
    shared_->wake.notify_all();
    if (thread.joinable()) thread.join();
    for (auto& r : pending) {
        Counters::add(counters_->aborted);
        r->handler.complete(aborted_error(r->describe(), "the event store was destroyed before it ran"));
    }
}

void Batcher::submit(std::shared_ptr<AppendRequest> request) {
    const std::size_t n = request->size();
    bool wake = false;
    {
        std::lock_guard lock(shared_->mutex);
        if (!shared_->stopping) {
            auto& s = *shared_;
            // Wake the batcher only when it has to act sooner than it planned:
            // it sleeps without a deadline when nothing is pending, and until
            // the first append's delay runs out otherwise.
            // A batcher blocked on streams in flight may be able to use this one.
            wake = s.pending.empty() || s.blocked ||
                   (s.pending_events < settings_.enough_events && s.pending_events + n >= settings_.enough_events);
            s.blocked = false;
            s.pending.push_back(std::move(request));
            s.pending_events += n;
        }
    }
    if (request) {
        Counters::add(counters_->aborted);
        request->handler.complete(aborted_error(request->describe(), "the event store is shutting down"));
        return;
    }
    if (wake) shared_->wake.notify_one();
}

std::function<void(boost::asio::cancellation_type)> Batcher::canceller(
    const std::shared_ptr<AppendRequest>& request) const {
    return [weak_shared = std::weak_ptr<Shared>(shared_), weak_request = std::weak_ptr<AppendRequest>(request)](
               boost::asio::cancellation_type) {
        auto shared = weak_shared.lock();
        auto waiting = weak_request.lock();
        if (!shared || !waiting) return;
        {
            std::lock_guard lock(shared->mutex);
            auto it = std::find(shared->pending.begin(), shared->pending.end(), waiting);
            if (it == shared->pending.end()) return;  // in a batch already: it completes normally
            shared->pending.erase(it);
            shared->pending_events -= waiting->size();
        }
        Counters::add(shared->counters->aborted);
        waiting->handler.complete(aborted_error(waiting->describe(), "cancelled before it was written"));
    };
}

void Batcher::loop() {
    pthread_setname_np(pthread_self(), "boong-pg-batch");
    auto& s = *shared_;
    std::unique_lock lock(s.mutex);
    while (!s.stopping) {
        if (s.pending.empty() || s.in_flight >= settings_.max_in_flight || s.blocked) {
            s.wake.wait(lock);
            continue;
        }
        // With no batch in flight, go at once: there is nothing to wait for,
        // and a lone append should not pay the delay. With one in flight,
        // wait for company until the oldest append's delay is up, the batch
        // holds enough events, or arrivals paused for an eighth of the
        // delay: this batch's commit overlaps the other's.
        const auto deadline = std::min(s.pending.front()->arrived + settings_.delay,
                                       s.pending.back()->arrived + settings_.delay / 8);  // the latest arrival
        if (s.in_flight > 0 && s.pending_events < settings_.enough_events &&
            std::chrono::steady_clock::now() < deadline) {
            s.wake.wait_until(lock, deadline);
            continue;
        }

        // Take appends in arrival order. Skipped: a stream already in this
        // batch or in one in flight (appends to a stream are applied in the
        // order they were made), an event id already in this batch, and
        // anything behind a skipped append of the same stream.
        std::vector<std::shared_ptr<AppendRequest>> batch;
        std::unordered_set<std::string_view> streams, ids, held_streams;
        std::size_t events = 0;
        for (auto it = s.pending.begin(); it != s.pending.end();) {
            auto& r = *it;
            if (!batch.empty() && events + r->size() > settings_.max_events) break;
            bool hold = s.busy_streams.count(r->stream) || streams.count(r->stream) || held_streams.count(r->stream);
            for (std::size_t i = 0; !hold && i < r->event_ids.size(); ++i) hold = ids.count(r->event_ids[i]) > 0;
            if (hold) {
                held_streams.insert(r->stream);
                ++it;
                continue;
            }
            streams.insert(r->stream);
            for (const auto& id : r->event_ids) ids.insert(id);
            events += r->size();
            batch.push_back(std::move(r));
            it = s.pending.erase(it);
        }
        if (batch.empty()) {
            s.blocked = true;  // until a batch in flight finishes
            continue;
        }
        s.pending_events -= events;
        for (const auto& r : batch) s.busy_streams.insert(r->stream);
        ++s.in_flight;
        lock.unlock();
        pool_.submit(std::make_shared<BatchJob>(std::move(batch), shared_, counters_, heads_, pool_.target()),
                     /*urgent=*/true);
        lock.lock();
    }
}

}  // namespace boong::pg
