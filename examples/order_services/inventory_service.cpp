// The inventory service: reserves the items of new orders (OrderCreated ->
// ItemsReserved, or ItemsNotAvailable when a SKU's stock is short) and
// releases them when the payment failed (PaymentFailed -> ItemsReleased, only
// if it had reserved them). Its state: the inventory-<id> streams, and a stock
// table seeded at first start (events.hpp: seed_stock()). The handlers are in
// handlers.hpp; this file wires them to PostgreSQL.
//
//   inventory_service --dsn DSN --redis HOST:PORT [--table NAME]
#include "common.hpp"

namespace shop {
namespace {

class InventoryService {
public:
    explicit InventoryService(Process& p) : p_(p), stock_(p.options()), handlers_(stock_) {}

    void create_tables() {
        p_.setup([this](pqxx::transaction_base& tx) { create_stock_table(tx, p_.options()); });
    }
    void subscribe() { handlers_.subscribe(p_.bus()); }

private:
    Process& p_;
    PostgresStock stock_;
    InventoryHandlers<Bus, PostgresStock> handlers_;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("inventory", argc, argv));
    shop::InventoryService service(process);
    service.create_tables();
    service.subscribe();
    return process.run();
} catch (const std::exception& e) {
    std::cerr << "inventory_service: " << e.what() << "\n";
    return 2;
}
