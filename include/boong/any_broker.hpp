// AnyBroker: any Broker behind one type, so that a service picks its broker
// at run time (from its configuration: make_broker in <boong/backends.hpp>)
// and the event bus, the outbox relay and the order services are compiled
// once. It is itself a Broker and a DeadLetterQueue, and it passes the same
// conformance suite as the brokers it holds.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/erased_handler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

class AnyBroker {
public:
    using executor_type = boost::asio::any_io_executor;

    // Takes the broker over. B must be a DeadLetterQueue with
    // async_consumer_groups (every Boong broker is); async_open is forwarded
    // when B has one, and completes at once otherwise.
    template <class B>
    requires DeadLetterQueue<B> &&(!std::same_as<B, AnyBroker>)explicit AnyBroker(std::unique_ptr<B> broker)
        : model_(std::make_unique<Model<B>>(std::move(broker))) {}

    AnyBroker(AnyBroker&&) noexcept = default;
    AnyBroker& operator=(AnyBroker&&) noexcept = default;

    executor_type get_executor() const { return model_->executor(); }
    // What is held, for messages: "redis at host:port", "rabbitmq at ...", "memory".
    std::string describe() const { return model_->describe(); }

    template <class Token>
    auto async_open(Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto h) { model_->open(detail::ErasedHandler<void>(std::move(h), model_->executor())); }, token);
    }

    template <class Token>
    auto async_publish(std::string_view topic, const EventData& event, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::string)>(
            [this](auto h, std::string_view t, const EventData* e) {
                model_->publish(t, *e, detail::ErasedHandler<std::string>(std::move(h), model_->executor()));
            },
            token, topic, &event);
    }

    // Cancellation through the token's slot reaches the held broker's consumer
    // (a terminal one is a graceful stop, as for every broker).
    template <class Token>
    auto async_consume(ConsumerOptions options, MessageHandler handler, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto h, ConsumerOptions o, MessageHandler mh) {
                model_->consume(std::move(o), std::move(mh),
                                detail::ErasedHandler<void>(std::move(h), model_->executor()));
            },
            token, std::move(options), std::move(handler));
    }

    template <class Token>
    auto async_dead_letters(std::string topic, std::string after, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<DeadLetter>)>(
            [this](auto h, std::string t, std::string a, std::size_t n) {
                model_->dead_letters(std::move(t), std::move(a), n,
                                     detail::ErasedHandler<std::vector<DeadLetter>>(std::move(h), model_->executor()));
            },
            token, std::move(topic), std::move(after), max_count);
    }
    template <class Token>
    auto async_redrive(std::string topic, DeadLetterSelection selection, Token&& token) {
        return settle(std::move(topic), std::move(selection), true, std::forward<Token>(token));
    }
    template <class Token>
    auto async_drop(std::string topic, DeadLetterSelection selection, Token&& token) {
        return settle(std::move(topic), std::move(selection), false, std::forward<Token>(token));
    }
    template <class Token>
    auto async_consumer_groups(std::string topic, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<ConsumerGroupStatus>)>(
            [this](auto h, std::string t) {
                model_->consumer_groups(std::move(t), detail::ErasedHandler<std::vector<ConsumerGroupStatus>>(
                                                          std::move(h), model_->executor()));
            },
            token, std::move(topic));
    }

private:
    template <class Token>
    auto settle(std::string topic, DeadLetterSelection selection, bool redrive, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::size_t)>(
            [this, redrive](auto h, std::string t, DeadLetterSelection s) {
                model_->settle(std::move(t), std::move(s), redrive,
                               detail::ErasedHandler<std::size_t>(std::move(h), model_->executor()));
            },
            token, std::move(topic), std::move(selection));
    }

    struct Concept {
        virtual ~Concept() = default;
        virtual executor_type executor() const = 0;
        virtual std::string describe() const = 0;
        virtual void open(detail::ErasedHandler<void> done) = 0;
        virtual void publish(std::string_view topic, const EventData& event,
                             detail::ErasedHandler<std::string> done) = 0;
        virtual void consume(ConsumerOptions options, MessageHandler handler, detail::ErasedHandler<void> done) = 0;
        virtual void dead_letters(std::string topic, std::string after, std::size_t max_count,
                                  detail::ErasedHandler<std::vector<DeadLetter>> done) = 0;
        virtual void settle(std::string topic, DeadLetterSelection selection, bool redrive,
                            detail::ErasedHandler<std::size_t> done) = 0;
        virtual void consumer_groups(std::string topic,
                                     detail::ErasedHandler<std::vector<ConsumerGroupStatus>> done) = 0;
    };

    template <class B>
    struct Model final : Concept {
        explicit Model(std::unique_ptr<B> b) : broker(std::move(b)) {}
        std::unique_ptr<B> broker;

        executor_type executor() const override { return broker->get_executor(); }
        std::string describe() const override {
            if constexpr (requires { broker->endpoint(); }) {
                return broker->endpoint();
            } else {
                return "memory";
            }
        }
        void open(detail::ErasedHandler<void> done) override {
            if constexpr (requires { broker->async_open(detail::CompleteErased<void>{std::move(done)}); }) {
                broker->async_open(detail::CompleteErased<void>{std::move(done)});
            } else {
                done.complete(nullptr);
            }
        }
        void publish(std::string_view topic, const EventData& event, detail::ErasedHandler<std::string> done) override {
            broker->async_publish(std::string(topic), event, detail::CompleteErased<std::string>{std::move(done)});
        }
        void consume(ConsumerOptions options, MessageHandler handler, detail::ErasedHandler<void> done) override {
            // The caller's cancellation, relayed to the held consumer's slot.
            auto signal = std::make_shared<boost::asio::cancellation_signal>();
            done.on_cancel([signal](boost::asio::cancellation_type type) { signal->emit(type); });
            broker->async_consume(std::move(options), std::move(handler),
                                  boost::asio::bind_cancellation_slot(signal->slot(), Relay{signal, std::move(done)}));
        }
        // Keeps the signal alive as long as the held consumer may emit through its slot.
        struct Relay {
            std::shared_ptr<boost::asio::cancellation_signal> signal;
            detail::ErasedHandler<void> done;
            void operator()(std::exception_ptr e) { done.complete(std::move(e)); }
        };
        void dead_letters(std::string topic, std::string after, std::size_t max_count,
                          detail::ErasedHandler<std::vector<DeadLetter>> done) override {
            broker->async_dead_letters(std::move(topic), std::move(after), max_count,
                                       detail::CompleteErased<std::vector<DeadLetter>>{std::move(done)});
        }
        void settle(std::string topic, DeadLetterSelection selection, bool redrive,
                    detail::ErasedHandler<std::size_t> done) override {
            if (redrive) {
                broker->async_redrive(std::move(topic), std::move(selection),
                                      detail::CompleteErased<std::size_t>{std::move(done)});
            } else {
                broker->async_drop(std::move(topic), std::move(selection),
                                   detail::CompleteErased<std::size_t>{std::move(done)});
            }
        }
        void consumer_groups(std::string topic, detail::ErasedHandler<std::vector<ConsumerGroupStatus>> done) override {
            broker->async_consumer_groups(std::move(topic),
                                          detail::CompleteErased<std::vector<ConsumerGroupStatus>>{std::move(done)});
        }
    };

    std::unique_ptr<Concept> model_;
};

static_assert(Broker<AnyBroker>);
static_assert(DeadLetterQueue<AnyBroker>);

}  // namespace boong
