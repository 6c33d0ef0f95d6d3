// Uses an installed Boong: generates an event id and checks that it is a UUID.
#include <boong/event.hpp>
#ifdef BOONG_CONSUMER_POSTGRES
#include <boong/postgres/store.hpp>

#include <boost/asio/io_context.hpp>
#endif

#ifdef BOONG_CONSUMER_REDIS
#include <boong/redis/broker.hpp>

#include <boost/asio/io_context.hpp>
#endif

#ifdef BOONG_CONSUMER_RABBITMQ
#include <boong/rabbitmq/broker.hpp>

#include <boost/asio/io_context.hpp>
#endif

#ifdef BOONG_CONSUMER_PROMETHEUS
#include <boong/prometheus/metrics.hpp>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#endif

#include <iostream>
#include <string>

int main() {
    boong::IdGenerator ids;
    const std::string id = ids.next();
    if (!boong::is_uuid(id)) {
        std::cerr << "consumer: '" << id << "' is not a UUID\n";
        return 1;
    }
    std::cout << "consumer: generated " << id << "\n";
#ifdef BOONG_CONSUMER_POSTGRES
    // Boong::postgres links: a store is made (connecting needs a server, and
    // is not tried) and its config is checked.
    boost::asio::io_context ioc;
    boong::PostgresStoreConfig config;
    config.connection = "postgresql://app@db.invalid:5432/orders";
    boong::PostgresEventStore store(ioc.get_executor(), config);
    config.table_name = "events; DROP TABLE users";
    try {
        boong::PostgresEventStore refused(ioc.get_executor(), config);
        std::cerr << "consumer: an SQL table name was accepted\n";
        return 1;
    } catch (const boong::Error& e) {
        if (e.code() != boong::errc::invalid_config) return 1;
    }
    std::cout << "consumer: Boong::postgres store made for " << store.endpoint() << "\n";
#endif
#ifdef BOONG_CONSUMER_REDIS
    // Boong::redis links: a broker is made (it connects on first use, which
    // is not tried) and a config it cannot use is refused.
    boost::asio::io_context redis_ioc;
    boong::RedisBrokerConfig redis_config;
    redis_config.host = "cache.invalid";
    boong::RedisBroker broker(redis_ioc.get_executor(), redis_config);
    redis_config.block_timeout = std::chrono::milliseconds(0);
    try {
        boong::RedisBroker refused(redis_ioc.get_executor(), redis_config);
        std::cerr << "consumer: a redis block_timeout of 0 was accepted\n";
        return 1;
    } catch (const boong::Error& e) {
        if (e.code() != boong::errc::invalid_config) return 1;
    }
    std::cout << "consumer: Boong::redis broker made for " << broker.endpoint() << "\n";
#endif
#ifdef BOONG_CONSUMER_RABBITMQ
    // Boong::rabbitmq links: a broker is made (it connects on first use) and
    // a config it cannot use is refused.
    boost::asio::io_context rabbit_ioc;
    boong::RabbitMqBrokerConfig rabbit_config;
    rabbit_config.host = "mq.invalid";
    boong::RabbitMqBroker rabbit(rabbit_ioc.get_executor(), rabbit_config);
    rabbit_config.publish_timeout = std::chrono::milliseconds(0);
    try {
        boong::RabbitMqBroker refused(rabbit_ioc.get_executor(), rabbit_config);
        std::cerr << "consumer: a rabbitmq publish_timeout of 0 was accepted\n";
        return 1;
    } catch (const boong::Error& e) {
        if (e.code() != boong::errc::invalid_config) return 1;
    }
    std::cout << "consumer: Boong::rabbitmq broker made for " << rabbit.endpoint() << "\n";
#endif
#ifdef BOONG_CONSUMER_PROMETHEUS
    // Boong::prometheus links: an observer counts into a registry.
    prometheus::Registry registry;
    boong::PrometheusObserver metrics(registry);
    metrics.saga_started("consumer");
    const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
    if (text.find("boong_sagas_started_total{saga_type=\"consumer\"} 1") == std::string::npos) {
        std::cerr << "consumer: the metrics do not count the saga:\n" << text;
        return 1;
    }
    std::cout << "consumer: Boong::prometheus counts\n";
#endif
    return 0;
}
