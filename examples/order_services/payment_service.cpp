// The payment service: charges orders (OrderCreated -> PaymentProcessed, or
// PaymentFailed when the amount is over the limit) and refunds them when
// their items turn out to be unavailable (ItemsNotAvailable ->
// PaymentRefunded, only if it had charged). Its state: the payment-<id>
// streams, and a payments table written with the events that justify it.
//
//   payment_service --dsn DSN --redis HOST:PORT [--table NAME]
#include "common.hpp"

namespace shop {
namespace {

class PaymentService {
public:
    explicit PaymentService(Process& p)
        : p_(p), payments_(payments_table(p.options())) {}

    void create_tables() {
        p_.setup([this](pqxx::transaction_base& tx) { create_payments_table(tx, p_.options()); });
    }

    void subscribe() {
        p_.bus().on<OrderCreated>([this](const OrderCreated& o, Context& ctx) {
            return on_order_created(o, ctx);
        });
        p_.bus().on<ItemsNotAvailable>([this](const ItemsNotAvailable& e, Context& ctx) {
            return on_items_not_available(e, ctx);
        });
    }

private:
    asio::awaitable<void> on_order_created(const OrderCreated& o, Context& ctx) {
        auto decide = [this, &o](pqxx::transaction_base& tx, Reaction& r) {
            const auto stream = payment_stream(o.order_id);
            const auto payment = read_stream_in(p_.store(), tx, stream);
            // Already decided, or cancelled before we saw the order: nothing to do.
            if (payment.version > 0) return;
            if (o.amount_cents > kPaymentLimitCents) {
                r.emit(stream,
                       PaymentFailed{o.order_id, "amount " + money(o.amount_cents) + " is over the limit of " +
                                                     money(kPaymentLimitCents)},
                       payment.expected());
                return;
            }
            r.emit(stream, PaymentProcessed{o.order_id, "pay-" + o.order_id, o.amount_cents}, payment.expected());
            r.then([this, &o](pqxx::transaction_base& t) {
                t.exec_params("INSERT INTO " + payments_ +
                                  " (order_id, customer, amount_cents, status) VALUES ($1, $2, $3, 'charged')",
                              o.order_id, o.customer, o.amount_cents);
            });
        };
        co_await ctx.react(std::move(decide));
    }

    asio::awaitable<void> on_items_not_available(const ItemsNotAvailable& e, Context& ctx) {
        auto decide = [this, &e](pqxx::transaction_base& tx, Reaction& r) {
            const auto stream = payment_stream(e.order_id);
            const auto payment = read_stream_in(p_.store(), tx, stream);
            const std::string reason = "items not available: " + e.reason;
            if (payment.version == 0) {
                // The order has not reached us yet: make sure it is never charged.
                r.emit(stream, PaymentCancelled{e.order_id, reason}, payment.expected());
                return;
            }
            const auto* charged = payment.find(PaymentProcessed::event_name);
            if (!charged || payment.has(PaymentRefunded::event_name)) return;  // nothing (more) to refund
            const auto paid = charged->payload.get<PaymentProcessed>();
            r.emit(stream, PaymentRefunded{e.order_id, paid.payment_id, paid.amount_cents, reason},
                   payment.expected());
            r.then([this, order_id = e.order_id](pqxx::transaction_base& t) {
                const auto n = t.exec_params("UPDATE " + payments_ +
                                                 " SET status = 'refunded', updated_at = now()"
                                                 " WHERE order_id = $1 AND status = 'charged'",
                                             order_id)
                                   .affected_rows();
                if (n != 1) throw std::runtime_error("payment of order " + order_id + " is not charged");
            });
        };
        co_await ctx.react(std::move(decide));
    }

    Process& p_;
    std::string payments_;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("payment", argc, argv));
    shop::PaymentService service(process);
    service.create_tables();
    service.subscribe();
    process.run();
    return 0;
} catch (const std::exception& e) {
    std::cerr << "payment_service: " << e.what() << "\n";
    return 2;
}
