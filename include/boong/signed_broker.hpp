// A Broker that signs what it publishes and refuses, to its consumers, what
// is not signed by a key they hold: wraps any Broker (memory, Redis,
// RabbitMQ), so the event bus and the outbox relay use it unchanged.
//
//   auto keys = std::make_shared<const boong::KeyRing>(boong::KeyRing::from_file(path));
//   boong::SignedBroker broker(redis, keys);
//   boong::EventBus bus(store, broker, registry, {.service = "payment"});
//
// A message that fails the check (unsigned, a malformed signature, an
// unknown key, a signature that does not match) goes to the topic's dead
// letters at once, the reason in metadata.extra.dead_letter.reason
// ("signature: ..."), and is logged by the consumer; the handler never sees
// it. See boong/signing.hpp and docs/security.md.
#pragma once

#include <boong/broker.hpp>
#include <boong/detail/post.hpp>
#include <boong/error.hpp>
#include <boong/signing.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>

#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace boong {

struct SignedBrokerOptions {
    bool sign = true;     // sign what is published (the ring must name a key to sign with)
    bool require = true;  // consumers dead-letter what is not authentic; false: they let it through
};

template <Broker B>
class SignedBroker {
public:
    using executor_type = typename B::executor_type;

    // Over `inner`, which outlives this. Error(errc::invalid_config) for no
    // ring, or sign without a key to sign with.
    SignedBroker(B& inner, std::shared_ptr<const KeyRing> keys, SignedBrokerOptions options = {})
        : inner_(inner), keys_(std::move(keys)), options_(options) {
        if (!keys_) throw Error(errc::invalid_config, "signed broker: no key ring");
        if (options_.sign && keys_->sign_with().empty()) {
            throw Error(errc::invalid_config, "signed broker: set to sign, but the key ring names no key to sign with");
        }
    }
    // Owning `inner` (so that it can be held by AnyBroker: make_broker).
    SignedBroker(std::unique_ptr<B> inner, std::shared_ptr<const KeyRing> keys, SignedBrokerOptions options = {})
        : SignedBroker(*inner, std::move(keys), options) {
        owned_ = std::move(inner);
    }

    executor_type get_executor() const { return inner_.get_executor(); }
    B& next_layer() noexcept { return inner_; }
    const KeyRing& keys() const noexcept { return *keys_; }

    // What the inner broker says it is, and that it signs.
    std::string endpoint() const {
        std::string what = "memory";
        if constexpr (requires { inner_.endpoint(); }) {
            what = inner_.endpoint();
        } else if constexpr (requires { inner_.describe(); }) {
            what = inner_.describe();
        }
        return what + (options_.require ? " (signed envelopes required)" : " (signed envelopes)");
    }

    template <class Token>
        requires requires(B& b, Token&& t) { b.async_open(std::forward<Token>(t)); }
    auto async_open(Token&& token) {
        return inner_.async_open(std::forward<Token>(token));
    }

    // An event that cannot be signed (sign_event's invalid_argument)
    // completes with that error, as the inner broker's own checks do.
    template <class Token>
    auto async_publish(std::string topic, EventData event, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::string)>(
            [this](auto handler, std::string t, EventData e) {
                std::exception_ptr refused;
                if (options_.sign) {
                    try {
                        sign_event(e, t, *keys_);
                    } catch (const Error&) {
                        refused = std::current_exception();
                    }
                }
                if (!refused) {
                    inner_.async_publish(std::move(t), std::move(e), std::move(handler));
                    return;
                }
                detail::post_completion(get_executor(), std::move(handler), refused, std::string());
            },
            token, std::move(topic), std::move(event));
    }

    template <class Token>
    auto async_consume(ConsumerOptions options, MessageHandler handler, Token&& token) {
        MessageHandler checked = [keys = keys_, require = options_.require,
                                  inner = std::move(handler)](const Delivery& d) -> boost::asio::awaitable<void> {
            if (require) {
                if (auto why = signature_problem(d.event, d.topic, *keys)) throw Rejection("signature: " + *why);
            }
            co_await inner(d);
        };
        return inner_.async_consume(std::move(options), std::move(checked), std::forward<Token>(token));
    }

    // Dead letters are the inner broker's, as they are (a redriven message
    // keeps its signature, and is checked again when it comes back).
    template <class Token>
        requires DeadLetterQueue<B>
    auto async_dead_letters(std::string topic, std::string after, std::size_t max_count, Token&& token) {
        return inner_.async_dead_letters(std::move(topic), std::move(after), max_count, std::forward<Token>(token));
    }
    template <class Token>
        requires DeadLetterQueue<B>
    auto async_redrive(std::string topic, DeadLetterSelection selection, Token&& token) {
        return inner_.async_redrive(std::move(topic), std::move(selection), std::forward<Token>(token));
    }
    template <class Token>
        requires DeadLetterQueue<B>
    auto async_drop(std::string topic, DeadLetterSelection selection, Token&& token) {
        return inner_.async_drop(std::move(topic), std::move(selection), std::forward<Token>(token));
    }
    template <class Token>
    auto async_consumer_groups(std::string topic, Token&& token) -> decltype(std::declval<B&>().async_consumer_groups(
                                                                      std::move(topic), std::forward<Token>(token))) {
        return inner_.async_consumer_groups(std::move(topic), std::forward<Token>(token));
    }

private:
    B& inner_;
    std::unique_ptr<B> owned_;  // null when `inner_` is not ours
    std::shared_ptr<const KeyRing> keys_;
    SignedBrokerOptions options_;
};

}  // namespace boong
