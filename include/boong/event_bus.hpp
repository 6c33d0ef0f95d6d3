// The event bus: choreography between services on any TransactionalStore
// (PostgreSQL in production, memory in tests) and any Broker. A service publishes typed domain events by storing them (an
// OutboxRelay with topic_by_type publishes them), and subscribes typed
// handlers through its consumer group. A handler reacts in one transaction:
// the events it emits, its own writes and the inbox record commit together,
// so a redelivered message has no second effect and no reaction is lost.
//
//   boong::EventBus bus(store, broker, registry, {.service = "payment"});
//   using Context = boong::HandlerContext<boong::PostgresEventStore>;
//   using Reaction = boong::Reaction<pqxx::transaction_base>;
//   bus.on<OrderCreated>([&](const OrderCreated& order, Context& ctx) -> asio::awaitable<void> {
//       auto decide = [&](pqxx::transaction_base& tx, Reaction& r) {
//           if (order.amount_cents > limit(tx, order.customer)) {
//               r.emit("payment-" + order.order_id, PaymentFailed{order.order_id, "over the limit"});
//           } else {
//               r.emit("payment-" + order.order_id, PaymentProcessed{order.order_id, order.amount_cents});
//               r.then([&](pqxx::transaction_base& tx) { charge(tx, order); });
//           }
//       };
//       co_await ctx.react(std::move(decide));
//   });
//   bus.start();
//
// See docs/choreography.md.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/reaction_batch.hpp>
#include <boong/detail/validate.hpp>
#include <boong/domain_event.hpp>
#include <boong/inbox.hpp>
#include <boong/owner.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boong {

// Where the relay sends an event: the topic of its type, so a service
// subscribes to exactly the events it handles. Saga streams go to "saga".
inline std::string topic_by_type(const RecordedEvent& e) {
    if (e.stream_id.starts_with("saga-")) return "saga";
    return e.event.type;
}

struct EventBusOptions {
    std::string service;      // the consumer group of every handler, and the inbox's name
    std::string consumer{};   // this process within the group; empty: "<hostname>-<pid>"
    // How each handler's consumer runs (after max_deliveries a message goes to
    // "<type>.dlq"; a store outage is waited out, never counted). Handlers in
    // flight mostly wait for a shared transaction (max_batch), so many are
    // cheap: they are what the group commit batches.
    ConsumerSettings consumers{.concurrency = 64};
    // How often a reaction is decided, in all, when the stream it appends to
    // moved under it (errc::concurrency_conflict: another handler of the
    // same flow appended first); then the message is left for redelivery.
    int conflict_attempts = 4;
    // Group commit: the reactions of deliveries handled at the same time
    // share one transaction, at most this many (1: each reaction commits
    // alone). A reaction that fails in a shared transaction never fails its
    // neighbours: it runs alone, the others go again (docs/event-bus.md).
    std::size_t max_batch = 32;
    // Shared transactions of the bus at once (max_batch > 1); reactions that
    // arrive meanwhile wait for the next one.
    std::size_t max_in_flight = 2;
    std::shared_ptr<spdlog::logger> logger{};  // null: spdlog's default logger
};

// What the bus's group commit did (EventBus::stats).
using EventBusStats = detail::ReactionBatchStats;

// What a handler decides: the events it emits (into one stream, appended
// first in its transaction) and the writes that go with them. Tx is the
// store's transaction_type.
template <class Tx>
class Reaction {
public:
    explicit Reaction(EventMetadata cause) : cause_(std::move(cause)) {}

    // Emits `event` into `stream`, caused by the handled event (same
    // correlation id, causation id = its event id). All emits of one reaction
    // go to one stream; `expected` applies to the first.
    template <DomainEvent E>
    void emit(std::string stream, const E& event, ExpectedVersion expected = ExpectedVersion::any()) {
        if (!stream_.empty() && stream != stream_) {
            throw Error(errc::invalid_argument, "a reaction emits into one stream: '" + stream_ + "', not also '" +
                                                    stream + "'");
        }
        if (stream_.empty()) expected_ = expected;
        stream_ = std::move(stream);
        events_.push_back(EventRegistry::encode(event, cause_));
    }

    // A write of the handler's own, run after the emitted events are appended.
    void then(std::function<void(Tx&)> write) { writes_.push_back(std::move(write)); }

    // A write that locks a row other reactions also update (a SKU's stock),
    // named by `lock_key` (say "stock/widget"). Such writes run after the
    // unnamed ones, in the order of their keys, also across the reactions
    // of a shared transaction: two transactions then lock those rows in one
    // order and never deadlock, whichever messages they carry.
    void then(std::string lock_key, std::function<void(Tx&)> write) {
        keyed_writes_.emplace_back(std::move(lock_key), std::move(write));
    }

    const std::string& stream() const noexcept { return stream_; }
    ExpectedVersion expected() const noexcept { return expected_; }
    std::vector<EventData>& events() noexcept { return events_; }
    const std::vector<std::function<void(Tx&)>>& writes() const noexcept { return writes_; }
    const std::vector<std::pair<std::string, std::function<void(Tx&)>>>& keyed_writes() const noexcept {
        return keyed_writes_;
    }

    // Runs every write: the unnamed ones in order, then the named ones by key.
    void write(Tx& tx) const {
        for (const auto& w : writes_) w(tx);
        std::vector<const std::pair<std::string, std::function<void(Tx&)>>*> keyed;
        for (const auto& w : keyed_writes_) keyed.push_back(&w);
        std::stable_sort(keyed.begin(), keyed.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
        for (const auto* w : keyed) w->second(tx);
    }

private:
    EventMetadata cause_;
    std::string stream_;
    ExpectedVersion expected_ = ExpectedVersion::any();
    std::vector<EventData> events_;
    std::vector<std::function<void(Tx&)>> writes_;
    std::vector<std::pair<std::string, std::function<void(Tx&)>>> keyed_writes_;
};

// What a handler knows about the message it handles, and how it reacts.
template <TransactionalStore S>
class HandlerContext {
public:
    using transaction_type = typename S::transaction_type;
    using batcher_type = detail::ReactionBatcher<S, Reaction<transaction_type>>;

    // Made by the bus for each delivery; the references outlive the handler.
    // `batcher`: the bus's group commit, or null (each reaction alone).
    HandlerContext(S& store, const std::string& service, int conflict_attempts, spdlog::logger& logger,
                   const Delivery& delivery, batcher_type* batcher = nullptr)
        : store_(store),
          service_(service),
          conflict_attempts_(conflict_attempts),
          logger_(logger),
          delivery_(delivery),
          batcher_(batcher) {}

    S& store() const noexcept { return store_; }
    const Delivery& delivery() const noexcept { return delivery_; }
    const EventData& event() const noexcept { return delivery_.event; }
    // The flow this event belongs to: its correlation id (its own id if it has none).
    const std::string& correlation_id() const noexcept {
        return event().metadata.correlation_id.empty() ? event().event_id : event().metadata.correlation_id;
    }
    // Metadata for what this handler causes: same correlation, caused by this event.
    EventMetadata caused() const {
        EventMetadata m;
        m.correlation_id = correlation_id();
        m.causation_id = event().event_id;
        m.timestamp = Clock::now();
        return m;
    }

    // Reacts once: in one transaction, checks the inbox (a message this
    // service processed already: returns false and does nothing), runs
    // decide(tx, reaction) (reads only: the append must be the transaction's
    // first write), appends what it emitted, runs its writes, records the
    // message in the inbox, and commits. Anything that throws rolls it all
    // back, and the message is delivered again. When the stream moved under
    // the decision (errc::concurrency_conflict), or the store aborted the
    // transaction for contention (errc::transaction_aborted: a deadlock
    // with another transaction over a row a write updates), decide runs
    // again with a fresh Reaction on what is there now, up to
    // conflict_attempts in all: so it must only read and emit, never act
    // outside the transaction. Past them, the delivery fails and the message
    // comes again after the consumer's visibility timeout.
    // With the bus's group commit (EventBusOptions::max_batch > 1) the
    // transaction may be shared with reactions to other deliveries: decide
    // then also sees none of their writes (they come after every decision),
    // and a reaction that fails never fails the others.
    template <class Decide>
    boost::asio::awaitable<bool> react(Decide decide) {
        // Held by pointer: decide need only be movable (std::function copies).
        auto d = std::make_shared<Decide>(std::move(decide));
        auto shared = std::make_shared<const Decided>(
            [d](transaction_type& tx, Reaction<transaction_type>& r, const std::vector<RecordedEvent>&) {
                (*d)(tx, r);
            });
        co_return co_await react_with(std::string(), std::move(shared));
    }

    // The same, deciding on `stream` as the transaction sees it:
    // decide(tx, reaction, events), with the stream's events (all of them,
    // none when it does not exist). In a shared transaction the streams of
    // all its reactions are read in one round trip (read_streams_in), where
    // react() with a read of its own in decide costs one each. The stream
    // need not be the one the reaction emits into.
    // Error(errc::invalid_argument) for a name the store refuses.
    template <class Decide>
    boost::asio::awaitable<bool> react_on(std::string stream, Decide decide) {
        detail::validate_stream_id(stream);
        auto d = std::make_shared<Decide>(std::move(decide));
        auto shared = std::make_shared<const Decided>(
            [d](transaction_type& tx, Reaction<transaction_type>& r, const std::vector<RecordedEvent>& events) {
                (*d)(tx, r, events);
            });
        co_return co_await react_with(std::move(stream), std::move(shared));
    }

private:
    using Decided = typename batcher_type::Decide;

    // reads: the stream decide is given (empty: none).
    boost::asio::awaitable<bool> react_with(std::string reads, std::shared_ptr<const Decided> decide) {
        if (!batcher_) co_return co_await react_alone(reads, decide, 1);
        for (int attempt = 1;;) {
            auto result =
                co_await batcher_->async_submit(decide, reads, event().event_id, caused(), boost::asio::use_awaitable);
            switch (result.outcome) {
                case detail::Batched::ran: co_return true;
                case detail::Batched::already_processed: co_return false;
                case detail::Batched::alone: co_return co_await react_alone(reads, decide, attempt);
                case detail::Batched::again: continue;
                case detail::Batched::conflict: break;
            }
            if (attempt >= conflict_attempts_) std::rethrow_exception(result.error);
            ++attempt;
            logger_.debug("event bus {}: {} {}: {} (deciding again)", service_, event().type, event().event_id,
                          describe(result.error));
        }
    }

    // The reaction in a transaction of its own, from attempt `first` on.
    boost::asio::awaitable<bool> react_alone(std::string reads, std::shared_ptr<const Decided> shared, int first) {
        for (int attempt = first;; ++attempt) {
            auto body = [&store = store_, service = service_, id = event().event_id, cause = caused(), shared,
                         reads](transaction_type& tx) {
                Reaction<transaction_type> r(cause);
                auto act = [&](transaction_type& t) {
                    const auto events = reads.empty() ? std::vector<RecordedEvent>() : store.read_stream_in(t, reads);
                    (*shared)(t, r, events);
                    if (!r.events().empty()) store.append_in(t, r.stream(), r.expected(), std::move(r.events()));
                    r.write(t);
                };
                return detail::process_once_in(store, tx, service, id, act);
            };
            std::exception_ptr error;
            try {
                co_return co_await async_transact(store_, std::move(body), boost::asio::use_awaitable);
            } catch (const detail::AlreadyProcessed&) {
                co_return false;  // a twin delivery recorded it while this one ran
            } catch (const Error& e) {
                if (!detail::decides_again(e.code()) || attempt >= conflict_attempts_) throw;
                error = std::current_exception();
            }
            logger_.debug("event bus {}: {} {}: {} (deciding again)", service_, event().type, event().event_id,
                          describe(error));
        }
    }

private:
    S& store_;
    const std::string& service_;
    int conflict_attempts_;
    spdlog::logger& logger_;
    const Delivery& delivery_;
    batcher_type* batcher_;
};

template <TransactionalStore S, Broker B>
class EventBus {
public:
    using store_type = S;
    using broker_type = B;
    using context_type = HandlerContext<S>;

    // The store must be open; store, broker and registry outlive the bus;
    // once started, stop() must have completed before it is destroyed.
    // Error(errc::invalid_config) for a service name the inbox cannot take
    // (1..255 bytes), or conflict_attempts < 1.
    EventBus(S& store, B& broker, const EventRegistry& registry, EventBusOptions options)
        : store_(store), broker_(broker), registry_(registry), options_(std::move(options)) {
        if (options_.service.empty() || options_.service.size() > 255) {
            throw Error(errc::invalid_config, "event bus: the service name must have 1..255 bytes");
        }
        if (options_.conflict_attempts < 1) {
            throw Error(errc::invalid_config, "event bus: conflict_attempts must be at least 1, not " +
                                                  std::to_string(options_.conflict_attempts));
        }
        if (options_.max_batch < 1 || options_.max_in_flight < 1) {
            throw Error(errc::invalid_config, "event bus: max_batch and max_in_flight must be at least 1");
        }
        if (options_.max_batch > 1) {
            batcher_ = std::make_shared<typename context_type::batcher_type>(store_, options_.service, options_.max_batch,
                                                                             options_.max_in_flight);
        }
        if (options_.consumer.empty()) {
            const auto owner = make_owner();
            options_.consumer = std::string(owner_name(owner));
        }
        if (!options_.logger) options_.logger = spdlog::default_logger();
    }
    ~EventBus() { stop_now(); }
    EventBus(const EventBus&) = delete;
    EventBus& operator=(const EventBus&) = delete;

    const EventRegistry& registry() const noexcept { return registry_; }

    // What the group commit did so far (all zero with max_batch 1).
    EventBusStats stats() const { return batcher_ ? batcher_->stats() : EventBusStats{}; }

    // Stores `event` in `stream` (the outbox relay publishes it). `cause`:
    // the metadata of what caused it (HandlerContext::caused()), or empty
    // for a new flow (its correlation id is then its own id).
    template <DomainEvent E>
    boost::asio::awaitable<AppendResult> publish(std::string stream, E event, ExpectedVersion expected,
                                                 EventMetadata cause) {
        std::vector<EventData> events;
        events.push_back(EventRegistry::encode(event, std::move(cause)));
        if (events[0].metadata.correlation_id.empty()) events[0].metadata.correlation_id = events[0].event_id;
        co_return co_await store_.async_append(std::move(stream), expected, std::move(events),
                                               boost::asio::use_awaitable);
    }

    // Subscribes `handler` (awaitable<void>(const E&, HandlerContext<S>&)) to
    // E's topic in this service's group. An event that does not decode (an
    // unknown version, a bad payload) goes to the dead letters at once with
    // the reason; the consumer carries on. A handler that throws leaves the
    // message for redelivery. Call before start().
    template <DomainEvent E, class Handler>
    void on(Handler handler) {
        if (started_) throw Error(errc::invalid_config, "event bus: on() after start()");
        if (!registry_.knows(E::event_name)) {
            throw Error(errc::invalid_config, "event bus: a handler for " + std::string(E::event_name) +
                                                  ", which the registry does not know");
        }
        auto h = std::make_shared<Handler>(std::move(handler));
        MessageHandler wrapped = [this, h](const Delivery& d) -> boost::asio::awaitable<void> {
            std::optional<E> event;
            std::string why;
            try {
                event.emplace(registry_.template decode<E>(d.event));
            } catch (const Error& e) {
                why = e.what();
            }
            if (!event) {
                options_.logger->error("event bus {}: {} (dead-lettered)", options_.service, why);
                throw Rejection(why);
            }
            context_type ctx(store_, options_.service, options_.conflict_attempts, *options_.logger, d, batcher_.get());
            co_await (*h)(*event, ctx);
        };
        auto& s = subscriptions_.emplace_back();
        s.topic = std::string(E::event_name);
        s.handler = std::move(wrapped);
    }

    // Starts one consumer per handler.
    void start() {
        started_ = true;
        for (auto& s : subscriptions_) {
            ConsumerOptions o;
            o.topic = s.topic;
            o.group = options_.service;
            o.consumer = options_.consumer;
            o.settings = options_.consumers;
            s.running = true;
            broker_.async_consume(o, s.handler,
                                  boost::asio::bind_cancellation_slot(
                                      s.stop.slot(), [this, &s](std::exception_ptr e) {
                                          s.running = false;
                                          if (e) {
                                              options_.logger->error("event bus {}: consumer of {} ended: {}",
                                                                     options_.service, s.topic, describe(e));
                                          }
                                      }));
        }
    }

    // Stops every consumer gracefully (handlers in flight get shutdown_grace).
    boost::asio::awaitable<void> stop() {
        stop_now();
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
        for (;;) {
            bool any = false;
            for (const auto& s : subscriptions_) any = any || s.running;
            if (!any) break;
            t.expires_after(milliseconds(5));
            co_await t.async_wait(boost::asio::use_awaitable);
        }
    }

private:
    struct Subscription {
        std::string topic;
        MessageHandler handler;
        boost::asio::cancellation_signal stop;
        std::atomic<bool> running{false};  // cleared by the consumer's completion, on any thread
    };

    void stop_now() {
        for (auto& s : subscriptions_) {
            if (s.running) s.stop.emit(boost::asio::cancellation_type::terminal);
        }
    }

    S& store_;
    B& broker_;
    const EventRegistry& registry_;
    EventBusOptions options_;
    std::shared_ptr<typename context_type::batcher_type> batcher_;  // null with max_batch 1
    std::list<Subscription> subscriptions_;  // stable addresses: consumers hold their signal
    bool started_ = false;
};

}  // namespace boong
