// The backends this Boong was built with, chosen by configuration (target
// Boong::backends): a service changes broker by editing its JSON, as the
// design's messageBroker.type says.
#pragma once

#include <boong/any_broker.hpp>
#include <boong/config.hpp>

#include <boost/asio/any_io_executor.hpp>

namespace boong {

// The broker `config.type` names, made with `config`'s options for it (not
// connected yet: AnyBroker::async_open connects, or the first use).
// Error(errc::invalid_config) when that backend was not built into this
// Boong (BOONG_WITH_REDIS, BOONG_WITH_RABBITMQ) or its options are unusable.
AnyBroker make_broker(boost::asio::any_io_executor ex, const MessageBrokerConfig& config);

}  // namespace boong
