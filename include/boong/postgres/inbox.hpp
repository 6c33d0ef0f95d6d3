// The inbox on PostgreSQL (target Boong::postgres): boong::Inbox over the
// store's inbox table, whose transactions are libpqxx's.
//
//   boong::PostgresInbox inbox(store, "payment-service");
//   auto pay = [&](pqxx::transaction_base& tx) { tx.exec_params("INSERT INTO payments ...", ...); };
//   bool ran = co_await inbox.async_process(delivery, std::move(pay), asio::use_awaitable);
//
// See boong/inbox.hpp.
#pragma once

#include <boong/inbox.hpp>
#include <boong/postgres/transaction.hpp>

namespace boong {

using PostgresInbox = Inbox<PostgresEventStore>;

}  // namespace boong
