// RedisBroker against a real redis-server (7.0): the Broker conformance suite,
// plus what only a Redis backend can show (unreachable server, undecodable
// entries, a consumer that dies, a server restart while messages flow).
//
// scripts/test.sh starts a private server and exports BOONG_TEST_REDIS_HOST
// and BOONG_TEST_REDIS_PORT; without them the tests fail (they are never
// skipped silently).
#include <boong/broker/redis.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace {

boong::RedisBrokerConfig test_config() {
    const char* host = std::getenv("BOONG_TEST_REDIS_HOST");
    const char* port = std::getenv("BOONG_TEST_REDIS_PORT");
    if (!host || !port || !*host || !*port)
        throw std::runtime_error("BOONG_TEST_REDIS_HOST / BOONG_TEST_REDIS_PORT are not set: run scripts/test.sh, "
                                 "or source scripts/lib/servers.sh and call boong_start_redis");
    boong::RedisBrokerConfig c;
    c.host = host;
    c.port = std::stoi(port);
    c.connect_timeout = std::chrono::milliseconds(2000);
    c.command_timeout = std::chrono::milliseconds(3000);
    c.block_timeout = std::chrono::milliseconds(200);
    return c;
}

// Names unique per process run too: the server outlives the test binary.
std::string run_prefix() {
    static const std::string prefix = "t" + boong::IdGenerator().next().substr(24);
    return prefix;
}

struct RedisBrokerFixture {
    boost::asio::io_context ioc_;
    boong::RedisBroker broker_{ioc_.get_executor(), test_config()};

    boost::asio::io_context& ioc() { return ioc_; }
    boong::RedisBroker& broker() { return broker_; }
    std::string unique(std::string_view base) {
        return run_prefix() + ":" + std::string(base) + "-" + std::to_string(++names_);
    }
    int names_ = 0;
    // Redelivery is found by XAUTOCLAIM every quarter of this: room for a
    // loaded machine, short enough for the suite's 5 s waits.
    std::chrono::milliseconds short_timeout() { return std::chrono::milliseconds(250); }
};

}  // namespace

#define BOONG_BROKER_FIXTURES RedisBrokerFixture
#include "conformance/broker_conformance.hpp"
