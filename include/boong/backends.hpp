// The backends this Boong was built with, chosen by configuration (target
// Boong::backends): a service changes broker or store by editing its JSON,
// as the design's messageBroker.type and eventStore.type say.
#pragma once

#include <boong/any_broker.hpp>
#include <boong/any_event_store.hpp>
#include <boong/config.hpp>

#include <boost/asio/any_io_executor.hpp>

namespace boong {

// The broker `config.type` names, made with `config`'s options for it (not
// connected yet: AnyBroker::async_open connects, or the first use).
// Error(errc::invalid_config) when that backend was not built into this
// Boong (BOONG_WITH_REDIS, BOONG_WITH_RABBITMQ) or its options are unusable.
AnyBroker make_broker(boost::asio::any_io_executor ex, const MessageBrokerConfig& config);

// The event store `config.type` names ("memory" or "postgres"), made with
// `config.postgres` for PostgreSQL (not connected yet: call
// AnyEventStore::async_open before using it). Error(errc::invalid_config)
// when that backend was not built into this Boong (BOONG_WITH_POSTGRES) or
// its options are unusable (the checks of PostgresEventStore's constructor).
AnyEventStore make_store(boost::asio::any_io_executor ex, const EventStoreConfig& config);

}  // namespace boong
