#include <boong/backends.hpp>
#include <boong/memory/broker.hpp>
#include <boong/signed_broker.hpp>

#if BOONG_HAS_REDIS
#include <boong/redis/broker.hpp>
#endif
#if BOONG_HAS_RABBITMQ
#include <boong/rabbitmq/broker.hpp>
#endif

namespace boong {

namespace {

[[noreturn, maybe_unused]] void not_built(const char* type, const char* option) {
    throw Error(errc::invalid_config, std::string("messageBroker.type \"") + type +
                                          "\": this Boong was built without it (" + option + "=OFF)");
}

// The configured backend, as it is.
AnyBroker make_unsigned(boost::asio::any_io_executor ex, const MessageBrokerConfig& config) {
    switch (config.type) {
        case MessageBrokerConfig::Type::memory: return AnyBroker(std::make_unique<MemoryBroker>(std::move(ex)));
        case MessageBrokerConfig::Type::redis_streams:
#if BOONG_HAS_REDIS
            return AnyBroker(std::make_unique<RedisBroker>(std::move(ex), config.redis));
#else
            not_built("redis-streams", "BOONG_WITH_REDIS");
#endif
        case MessageBrokerConfig::Type::rabbitmq:
#if BOONG_HAS_RABBITMQ
            return AnyBroker(std::make_unique<RabbitMqBroker>(std::move(ex), config.rabbitmq));
#else
            not_built("rabbitmq", "BOONG_WITH_RABBITMQ");
#endif
    }
    throw Error(errc::invalid_config, "messageBroker.type: unknown");
}

}  // namespace

AnyBroker make_broker(boost::asio::any_io_executor ex, const MessageBrokerConfig& config) {
    if (config.signing.keys_file.empty()) return make_unsigned(std::move(ex), config);
    // The keys first: a bad key file fails before any connection is made.
    auto keys = std::make_shared<const KeyRing>(KeyRing::from_file(config.signing.keys_file));
    auto inner = std::make_unique<AnyBroker>(make_unsigned(std::move(ex), config));
    return AnyBroker(std::make_unique<SignedBroker<AnyBroker>>(
        std::move(inner), std::move(keys), SignedBrokerOptions{config.signing.sign, config.signing.require}));
}


}  // namespace boong
