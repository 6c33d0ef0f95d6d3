// Context of doc blocks about durable execution: the order saga on
// PostgreSQL, with Redis as the broker.
#pragma once

#include "contexts/order_processing.hpp"

#include <boong/postgres/outbox.hpp>
#include <boong/postgres/sagas.hpp>
#include <boong/postgres/store.hpp>
#include <boong/postgres/transaction.hpp>
#include <boong/redis/broker.hpp>

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS                                                                                        \
    OrderSaga &saga, boong::PostgresEventStore &store, boong::RedisBroker &broker, boong::Config config, \
        OrderData order, std::string id
