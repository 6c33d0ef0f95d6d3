// The inventory service: reserves the items of new orders (OrderCreated ->
// ItemsReserved, or ItemsNotAvailable when a SKU's stock is short) and
// releases them when the payment failed (PaymentFailed -> ItemsReleased, only
// if it had reserved them). Its state: the inventory-<id> streams, and a stock
// table seeded at first start (events.hpp: seed_stock()).
//
//   inventory_service --dsn DSN --redis HOST:PORT [--table NAME]
#include "common.hpp"

#include <algorithm>

namespace shop {
namespace {

// One line per SKU (an order may name a SKU twice), sorted by SKU so that
// concurrent reservations lock stock rows in the same order.
std::vector<Item> merged(const std::vector<Item>& items) {
    std::map<std::string, std::int64_t> by_sku;
    for (const auto& i : items) by_sku[i.sku] += i.quantity;
    std::vector<Item> out;
    for (const auto& [sku, q] : by_sku) out.push_back(Item{sku, q});
    return out;
}

class InventoryService {
public:
    explicit InventoryService(Process& p) : p_(p), stock_(stock_table(p.options())) {}

    void create_tables() {
        p_.setup([this](pqxx::transaction_base& tx) { create_stock_table(tx, p_.options()); });
    }

    void subscribe() {
        p_.bus().on<OrderCreated>([this](const OrderCreated& o, Context& ctx) {
            return on_order_created(o, ctx);
        });
        p_.bus().on<PaymentFailed>([this](const PaymentFailed& e, Context& ctx) {
            return on_payment_failed(e, ctx);
        });
    }

private:
    asio::awaitable<void> on_order_created(const OrderCreated& o, Context& ctx) {
        auto decide = [this, &o](pqxx::transaction_base& tx, Reaction& r) {
            const auto stream = inventory_stream(o.order_id);
            const auto inventory = read_stream_in(p_.store(), tx, stream);
            if (inventory.version > 0) return;  // decided already, or the payment failed first
            auto items = merged(o.items);
            for (const auto& i : items) {
                const auto row = tx.exec_params("SELECT available FROM " + stock_ + " WHERE sku = $1", i.sku);
                const std::int64_t available = row.empty() ? 0 : row[0][0].as<std::int64_t>();
                if (row.empty() || available < i.quantity) {
                    const std::string reason =
                        row.empty() ? "unknown sku '" + i.sku + "'"
                                    : "sku '" + i.sku + "': " + std::to_string(i.quantity) + " requested, " +
                                          std::to_string(available) + " in stock";
                    r.emit(stream, ItemsNotAvailable{o.order_id, i.sku, i.quantity, available, reason},
                           inventory.expected());
                    return;
                }
            }
            r.emit(stream, ItemsReserved{o.order_id, items}, inventory.expected());
            // The stock may have moved since we read it: take it only if it
            // is still there, or roll everything back (the message comes again).
            r.then([this, items](pqxx::transaction_base& t) {
                for (const auto& i : items) {
                    const auto n = t.exec_params("UPDATE " + stock_ +
                                                     " SET available = available - $2 WHERE sku = $1 AND available >= $2",
                                                 i.sku, i.quantity)
                                       .affected_rows();
                    if (n == 0) throw std::runtime_error("stock of '" + i.sku + "' changed while reserving; again");
                }
            });
        };
        co_await ctx.react(std::move(decide));
    }

    asio::awaitable<void> on_payment_failed(const PaymentFailed& e, Context& ctx) {
        auto decide = [this, &e](pqxx::transaction_base& tx, Reaction& r) {
            const auto stream = inventory_stream(e.order_id);
            const auto inventory = read_stream_in(p_.store(), tx, stream);
            const std::string reason = "payment failed: " + e.reason;
            if (inventory.version == 0) {
                // The order has not reached us yet: make sure nothing is ever reserved for it.
                r.emit(stream, ReservationCancelled{e.order_id, reason}, inventory.expected());
                return;
            }
            const auto* reserved = inventory.find(ItemsReserved::event_name);
            if (!reserved || inventory.has(ItemsReleased::event_name)) return;  // nothing (more) to release
            auto items = reserved->payload.get<ItemsReserved>().items;
            r.emit(stream, ItemsReleased{e.order_id, items, reason}, inventory.expected());
            r.then([this, items](pqxx::transaction_base& t) {
                for (const auto& i : items) {
                    t.exec_params("UPDATE " + stock_ + " SET available = available + $2 WHERE sku = $1", i.sku,
                                  i.quantity);
                }
            });
        };
        co_await ctx.react(std::move(decide));
    }

    Process& p_;
    std::string stock_;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("inventory", argc, argv));
    shop::InventoryService service(process);
    service.create_tables();
    service.subscribe();
    process.run();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "inventory_service: " << e.what() << "\n";
    return 2;
}
