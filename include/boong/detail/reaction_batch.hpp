// Group commit for the event bus: the reactions of deliveries handled at the
// same time share one transaction (one inbox check, one read of the streams
// they decide on, the decisions, one call of append_many_in, one inbox
// record, the handlers' writes, one commit), so one
// durable commit, and one hold of a hot row a handler updates, serves many
// messages. A reaction that fails inside a shared transaction never takes
// its neighbours with it: the transaction is rolled back, the one at fault
// runs alone (exactly as without batching) and the others go again.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/error.hpp>
#include <boong/inbox.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace boong::detail {

// How one reaction of a shared transaction ended.
enum class Batched {
    ran,                // decided, written and recorded; committed
    already_processed,  // the inbox held its message: nothing done
    conflict,           // its stream moved under its decision: decide again (error says how)
    alone,              // it failed the shared transaction: run it in a transaction of its own
    again,              // a neighbour failed the transaction, or its stream was taken: submit again
};

struct BatchedResult {
    Batched outcome = Batched::again;
    std::exception_ptr error;  // the conflict, for Batched::conflict
};

struct ReactionBatchStats {
    std::uint64_t transactions = 0;  // shared transactions run (committed or not)
    std::uint64_t reactions = 0;     // reactions they carried
    std::uint64_t splits = 0;        // transactions one reaction failed (it then ran alone)
};

// A reaction that failed with this decides again on what is there now: its
// stream moved under its decision, or the store aborted its transaction for
// contention (a deadlock over a row its writes update).
inline bool decides_again(const error_code& code) noexcept {
    return code == make_error_code(errc::concurrency_conflict) || code == make_error_code(errc::transaction_aborted);
}

// S: the store; R: boong::Reaction<S::transaction_type>.
template <TransactionalStore S, class R>
class ReactionBatcher : public std::enable_shared_from_this<ReactionBatcher<S, R>> {
public:
    using Tx = typename S::transaction_type;
    // decide(tx, reaction, events): `events` is the stream the reaction
    // named to read (Job::reads), whole, or empty when it named none.
    using Decide = std::function<void(Tx&, R&, const std::vector<RecordedEvent>&)>;

    ReactionBatcher(S& store, std::string service, std::size_t max_reactions, std::size_t max_in_flight)
        : store_(store), service_(std::move(service)), max_reactions_(max_reactions), max_in_flight_(max_in_flight) {}

    // Queues the reaction to `message_id` for the next shared transaction,
    // deciding on stream `reads` (a valid stream name, or empty: none).
    // Completes with its BatchedResult once that transaction has ended, or
    // with the exception that failed it for everyone (the store unreachable).
    template <class Token>
    auto async_submit(std::shared_ptr<const Decide> decide, std::string reads, std::string message_id,
                      EventMetadata cause, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, BatchedResult)>(
            [self = this->shared_from_this()](auto handler, std::shared_ptr<const Decide> d, std::string r,
                                              std::string id, EventMetadata c) {
                auto job = std::make_shared<Job>(Job{std::move(d), std::move(r), std::move(id), std::move(c),
                                                     ErasedHandler<BatchedResult>(std::move(handler),
                                                                                  self->store_.get_executor())});
                // A reaction still queued may be cancelled (a consumer
                // stopping); one in a transaction completes with it.
                job->handler.on_cancel([weak = self->weak_from_this(),
                                        waiting = std::weak_ptr<Job>(job)](boost::asio::cancellation_type) {
                    if (auto me = weak.lock()) me->cancel(waiting.lock());
                });
                self->submit(std::move(job));
            },
            token, std::move(decide), std::move(reads), std::move(message_id), std::move(cause));
    }

    ReactionBatchStats stats() const {
        return {transactions_.load(), reactions_.load(), splits_.load()};
    }

private:
    struct Job {
        std::shared_ptr<const Decide> decide;
        std::string reads;  // the stream it decides on, read for it; empty: none
        std::string message_id;
        EventMetadata cause;
        ErasedHandler<BatchedResult> handler;
    };

    // Thrown out of a shared transaction by the reaction at `index`, rolling
    // it back.
    struct Split {
        std::size_t index;
        std::exception_ptr error;
    };

    void submit(std::shared_ptr<Job> job) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(std::move(job));
        }
        launch();
    }

    void cancel(const std::shared_ptr<Job>& job) {
        if (!job) return;
        {
            std::lock_guard lock(mutex_);
            auto it = std::find(queue_.begin(), queue_.end(), job);
            if (it == queue_.end()) return;  // in a transaction already: it completes with it
            queue_.erase(it);
        }
        job->handler.complete(std::make_exception_ptr(
            Error(make_error_code(boost::asio::error::operation_aborted),
                  "reaction to " + job->message_id + ": cancelled before its transaction began")));
    }

    // Starts shared transactions while there is room: a reaction waits only
    // while max_in_flight transactions are running, and the next one takes
    // everything that queued meanwhile (up to max_reactions).
    void launch() {
        for (;;) {
            auto jobs = std::make_shared<std::vector<std::shared_ptr<Job>>>();
            {
                std::lock_guard lock(mutex_);
                if (in_flight_ >= max_in_flight_ || queue_.empty()) return;
                ++in_flight_;
                while (!queue_.empty() && jobs->size() < max_reactions_) {
                    jobs->push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            ++transactions_;
            reactions_ += jobs->size();
            auto body = [self = this->shared_from_this(), jobs](Tx& tx) { return self->run_in(tx, *jobs); };
            async_transact(store_, std::move(body),
                           [self = this->shared_from_this(), jobs](std::exception_ptr e,
                                                                  std::vector<BatchedResult> results) {
                               self->finish(*jobs, std::move(e), std::move(results));
                           });
        }
    }

    // The shared transaction. Reads come first (inbox checks, the streams
    // the reactions decide on, decisions), then the one append, the inbox
    // records, and the writes last: a hot row they update stays locked only
    // from there to the commit.
    std::vector<BatchedResult> run_in(Tx& tx, const std::vector<std::shared_ptr<Job>>& jobs) {
        const std::size_t n = jobs.size();
        std::vector<BatchedResult> out(n);
        std::vector<std::optional<R>> reactions(n);
        std::unordered_set<std::string> streams;
        std::vector<StreamAppend> appends;
        std::vector<std::size_t> appender;  // the job of each append
        // One inbox check for all; a message twice in the batch (a twin
        // delivery) goes again, and then finds itself processed.
        std::vector<std::string> ids;
        std::unordered_set<std::string> seen;
        for (const auto& job : jobs) ids.push_back(job->message_id);
        const auto processed = store_.processed_many_in(tx, service_, ids);
        std::vector<std::size_t> deciding;
        for (std::size_t i = 0; i < n; ++i) {
            if (!seen.insert(jobs[i]->message_id).second) continue;  // Batched::again
            if (processed.at(i)) {
                out[i].outcome = Batched::already_processed;
                continue;
            }
            deciding.push_back(i);
        }
        // The streams they decide on, each once, in one round trip.
        std::unordered_map<std::string, std::vector<RecordedEvent>> read;
        {
            std::vector<std::string> names;
            for (const std::size_t i : deciding) {
                const auto& name = jobs[i]->reads;
                if (!name.empty() && read.try_emplace(name).second) names.push_back(name);
            }
            auto answers = store_.read_streams_in(tx, names);
            for (std::size_t k = 0; k < names.size(); ++k) read[names[k]] = std::move(answers.at(k));
        }
        const std::vector<RecordedEvent> none;
        for (const std::size_t i : deciding) {
            const Job& job = *jobs[i];
            auto& r = reactions[i].emplace(job.cause);
            try {
                (*job.decide)(tx, r, job.reads.empty() ? none : read.at(job.reads));
            } catch (...) {
                throw Split{i, std::current_exception()};
            }
            if (!r.events().empty()) {
                // One append per stream (the store's rule): a second reaction
                // to the same stream decides again on what the first wrote.
                if (!streams.insert(r.stream()).second) {
                    reactions[i].reset();
                    continue;  // Batched::again
                }
                appends.push_back(StreamAppend{r.stream(), r.expected(), std::move(r.events())});
                appender.push_back(i);
            }
            out[i].outcome = Batched::ran;
        }
        if (!appends.empty()) {
            auto outcomes = store_.append_many_in(tx, std::move(appends));
            for (std::size_t k = 0; k < outcomes.size(); ++k) {
                if (!outcomes[k].error) continue;
                const std::size_t i = appender[k];
                reactions[i].reset();
                if (is_conflict(outcomes[k].error)) {
                    out[i] = {Batched::conflict, outcomes[k].error};
                } else {
                    throw Split{i, outcomes[k].error};  // alone, it meets the same error as without batching
                }
            }
        }
        std::vector<std::string> ran;
        std::vector<std::size_t> ran_job;
        for (std::size_t i = 0; i < n; ++i) {
            if (out[i].outcome != Batched::ran) continue;
            ran.push_back(jobs[i]->message_id);
            ran_job.push_back(i);
        }
        const auto recorded = store_.record_processed_many_in(tx, service_, ran);
        for (std::size_t k = 0; k < ran.size(); ++k) {
            // A twin delivery recorded it meanwhile: none of this may commit.
            if (!recorded.at(k)) throw Split{ran_job[k], std::make_exception_ptr(AlreadyProcessed{})};
        }
        // The writes: each reaction's unnamed ones, then every named one
        // (Reaction::then(lock_key, ...)) in key order across the reactions,
        // so that shared transactions lock contended rows in one order.
        struct Keyed {
            const std::string* key;
            std::size_t job;
            const std::function<void(Tx&)>* write;
        };
        std::vector<Keyed> keyed;
        for (const std::size_t i : ran_job) {
            try {
                for (const auto& write : reactions[i]->writes()) write(tx);
            } catch (...) {
                // Its own failure, or a deadlock it met (a driver error):
                // alone, it is retried as the store's rules say.
                throw Split{i, std::current_exception()};
            }
            for (const auto& [key, write] : reactions[i]->keyed_writes()) keyed.push_back(Keyed{&key, i, &write});
        }
        std::stable_sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) { return *a.key < *b.key; });
        for (const auto& k : keyed) {
            try {
                (*k.write)(tx);
            } catch (...) {
                throw Split{k.job, std::current_exception()};
            }
        }
        return out;
    }

    static bool is_conflict(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const Error& err) {
            return err.code() == make_error_code(errc::concurrency_conflict);
        } catch (...) {
            return false;
        }
    }

    static bool decides_again(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const Error& err) {
            return detail::decides_again(err.code());
        } catch (...) {
            return false;
        }
    }

    static const Split* split_of(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const Split& s) {
            return &s;  // the exception object lives as long as `e`
        } catch (...) {
            return nullptr;
        }
    }

    void finish(const std::vector<std::shared_ptr<Job>>& jobs, std::exception_ptr error, std::vector<BatchedResult> results) {
        {
            std::lock_guard lock(mutex_);
            --in_flight_;
        }
        if (!error) {
            for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i]->handler.complete(nullptr, std::move(results[i]));
        } else if (const Split* split = split_of(error)) {
            if (jobs.size() > 1) ++splits_;
            for (std::size_t i = 0; i < jobs.size(); ++i) {
                BatchedResult r;
                if (i == split->index) {
                    r.outcome = is_already_processed(split->error) ? Batched::already_processed : Batched::alone;
                }
                jobs[i]->handler.complete(nullptr, std::move(r));
            }
        } else if (jobs.size() > 1 && decides_again(error)) {
            // Another transaction wrote one of the streams at the same moment,
            // or the store aborted this one for contention: each runs alone,
            // so only the one it concerns counts a conflict.
            ++splits_;
            for (const auto& job : jobs) job->handler.complete(nullptr, BatchedResult{Batched::alone, nullptr});
        } else {
            for (const auto& job : jobs) job->handler.complete(error);
        }
        launch();
    }

    S& store_;
    const std::string service_;
    const std::size_t max_reactions_;
    const std::size_t max_in_flight_;
    std::mutex mutex_;
    std::deque<std::shared_ptr<Job>> queue_;
    std::size_t in_flight_ = 0;
    std::atomic<std::uint64_t> transactions_{0}, reactions_{0}, splits_{0};
};

}  // namespace boong::detail
