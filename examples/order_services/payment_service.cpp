// The payment service: charges orders (OrderCreated -> PaymentProcessed, or
// PaymentFailed when the amount is over the limit) and refunds them when
// their items turn out to be unavailable (ItemsNotAvailable ->
// PaymentRefunded, only if it had charged). Its state: the payment-<id>
// streams, and a payments table written with the events that justify it.
// The handlers are in handlers.hpp; this file wires them to PostgreSQL.
//
//   payment_service --dsn DSN --redis HOST:PORT [--table NAME]
#include "common.hpp"

namespace shop {
namespace {

class PaymentService {
public:
    explicit PaymentService(Process& p) : p_(p), payments_(p.options()), handlers_(payments_) {}

    void create_tables() {
        p_.setup([this](pqxx::transaction_base& tx) { create_payments_table(tx, p_.options()); });
    }
    void subscribe() { handlers_.subscribe(p_.bus()); }

private:
    Process& p_;
    PostgresPayments payments_;
    PaymentHandlers<Bus, PostgresPayments> handlers_;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("payment", argc, argv));
    shop::PaymentService service(process);
    service.create_tables();
    service.subscribe();
    return process.run();
} catch (const std::exception& e) {
    std::cerr << "payment_service: " << e.what() << "\n";
    return 2;
}
