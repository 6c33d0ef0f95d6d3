#include <boong/backends.hpp>
#include <boong/memory/broker.hpp>

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

}  // namespace

AnyBroker make_broker(boost::asio::any_io_executor ex, const MessageBrokerConfig& config) {
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

}  // namespace boong
