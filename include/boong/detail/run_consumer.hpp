// Starting a broker consumer: shared by every Broker backend's async_consume.
#pragma once

#include <boong/detail/erased_handler.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <memory>
#include <utility>

namespace boong::detail {

// Runs `consumer` (a backend's Consumer: strand(), request_stop(type),
// stop_signal(), finished(), static run(shared_ptr)) until it stops, then
// completes `completion`. The caller may emit cancellation from its own
// thread, so a stop request hops onto the consumer's strand. co_spawn never
// completes inline; ErasedHandler completes through the caller's executor and
// clears the caller's slot first.
template <class Consumer>
void run_consumer(std::shared_ptr<Consumer> consumer, ErasedHandler<void> completion) {
    completion.on_cancel([consumer](boost::asio::cancellation_type type) {
        boost::asio::post(consumer->strand(), [consumer, type] { consumer->request_stop(type); });
    });
    boost::asio::co_spawn(consumer->strand(), Consumer::run(consumer),
                          boost::asio::bind_cancellation_slot(
                              consumer->stop_signal().slot(),
                              [consumer, c = std::move(completion)](std::exception_ptr e) mutable {
                                  consumer->finished();
                                  c.complete(std::move(e));
                              }));
}

}  // namespace boong::detail
