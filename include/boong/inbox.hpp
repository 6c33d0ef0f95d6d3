// The inbox: idempotent consumers on any TransactionalStore.
//
// A handler whose effect is a write to the store records the message it
// processed in the same transaction as the effect. A redelivered message (the
// broker delivers at least once) finds its id recorded and has no second
// effect; a handler that failed rolled back both, so the redelivery does it.
//
//   boong::Inbox inbox(store, "payment-service");
//   co_await broker.async_consume(opts, [&](const boong::Delivery& d) -> asio::awaitable<void> {
//       auto pay = [&](pqxx::transaction_base& tx) {   // the store's transaction_type
//           tx.exec_params("INSERT INTO payments (order_id, amount) VALUES ($1, $2)", ...);
//       };
//       co_await inbox.async_process(d, std::move(pay), asio::use_awaitable);
//   }, asio::use_awaitable);
//
// The EventBus's HandlerContext::react runs the same protocol.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/post.hpp>
#include <boong/detail/validate.hpp>
#include <boong/transactional_store.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>

#include <exception>
#include <string>
#include <utility>

namespace boong {

namespace detail {

// Rolls back a transaction whose message a twin delivery recorded first. It
// never leaves async_process_once.
struct AlreadyProcessed : std::exception {
    const char* what() const noexcept override { return "the message was processed meanwhile"; }
};

inline bool is_already_processed(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const AlreadyProcessed&) {
        return true;
    } catch (...) {
        return false;
    }
}

// The inbox protocol, inside the caller's transaction: false (and nothing
// done) for a message `consumer` has processed; else body(tx), then the
// record (after body: an append must be a transaction's first write).
template <class Store, class Body>
bool process_once_in(Store& store, typename Store::transaction_type& tx, const std::string& consumer,
                     const std::string& message_id, Body& body) {
    if (store.processed_in(tx, consumer, message_id)) return false;
    body(tx);
    if (!store.record_processed_in(tx, consumer, message_id)) throw AlreadyProcessed{};
    return true;
}

// process_once_in in a transaction of its own. Completes with true when the
// body ran and committed, false for a message already processed (a twin
// that recorded it while this one ran was rolled back), or the exception
// that rolled it back (a bad consumer name or message id:
// errc::invalid_argument).
template <TransactionalStore Store, class Body, class Token>
auto async_process_once(Store& store, std::string consumer, std::string message_id, Body body, Token&& token) {
    return boost::asio::async_initiate<Token, void(std::exception_ptr, bool)>(
        [&store](auto handler, std::string c, std::string id, Body b) {
            try {
                validate_inbox_entry(c, id);
            } catch (...) {
                post_completion(store.get_executor(), std::move(handler), std::current_exception(), false);
                return;
            }
            auto work = [&store, c = std::move(c), id = std::move(id),
                         b = std::move(b)](typename Store::transaction_type& tx) mutable {
                return process_once_in(store, tx, c, id, b);
            };
            // The completion keeps the caller's executor and cancellation slot.
            auto ex = boost::asio::get_associated_executor(handler, store.get_executor());
            auto slot = boost::asio::get_associated_cancellation_slot(handler);
            async_transact(store, std::move(work),
                           boost::asio::bind_cancellation_slot(
                               slot, boost::asio::bind_executor(
                                         ex, [h = std::move(handler)](std::exception_ptr e, bool ran) mutable {
                                             if (e && is_already_processed(e)) {
                                                 e = nullptr;
                                                 ran = false;
                                             }
                                             std::move(h)(std::move(e), ran);
                                         })));
        },
        token, std::move(consumer), std::move(message_id), std::move(body));
}

}  // namespace detail

template <TransactionalStore Store>
class Inbox {
public:
    using transaction_type = typename Store::transaction_type;

    // `consumer` names the handler (usually its consumer group): each
    // consumer has its own record of what it processed. The store must
    // outlive the inbox. Error(errc::invalid_argument) for an empty or
    // over-long name.
    Inbox(Store& store, std::string consumer) : store_(store), consumer_(std::move(consumer)) {
        detail::validate_inbox_entry(consumer_, "-");
    }

    const std::string& consumer() const noexcept { return consumer_; }

    // Runs `body(tx)` and records `message_id` in one transaction, unless the
    // id is recorded already: then the body does not run. Completes with
    // true when the body ran (and committed), false for a duplicate. Two
    // deliveries of one id at once: one commits, the other is a duplicate.
    // An empty or over-long id completes with errc::invalid_argument.
    template <class Body, class Token>
    auto async_process(std::string message_id, Body body, Token&& token) {
        return detail::async_process_once(store_, consumer_, std::move(message_id), std::move(body),
                                          std::forward<Token>(token));
    }

    // The same, keyed by the delivered event's id: stable across redeliveries
    // and republications (the broker's message id is not).
    template <class Body, class Token>
    auto async_process(const Delivery& delivery, Body body, Token&& token) {
        return async_process(delivery.event.event_id, std::move(body), std::forward<Token>(token));
    }

private:
    Store& store_;
    std::string consumer_;
};

}  // namespace boong
