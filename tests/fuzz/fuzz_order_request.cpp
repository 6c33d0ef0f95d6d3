// libFuzzer target: the order service's request reading (examples/order_services):
// HTTP framing with the service's limits, the answer to what cannot be read,
// routing, the Idempotency-Key check and the POST body's checks. Every input
// is a request the service answers, or one it closes on; nothing crashes.
#include "../../examples/order_services/order_request.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace http = boost::beast::http;
    http::request_parser<http::string_body> parser;
    parser.header_limit(shop::kHeaderLimit);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    boost::system::error_code ec;
    boost::asio::const_buffer input(data, size);
    while (input.size() > 0 && !ec && !parser.is_done()) {
        const auto used = parser.put(input, ec);
        if (ec == http::error::need_more) {
            ec = {};
            break;
        }
        input += used;
        if (used == 0 && !ec) break;
    }
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec) {
        const int status = shop::status_for_unreadable(ec);
        if (status != 0 && status != 400 && status != 413 && status != 431) __builtin_trap();
        return 0;
    }
    if (!parser.is_done()) return 0;
    const auto& req = parser.get();
    std::string id;
    const auto where = shop::route(req.method(), req.target(), id);
    if (where == shop::Route::get && !boong::is_uuid(id)) __builtin_trap();
    if (auto it = req.find("Idempotency-Key"); it != req.end()) (void)shop::idempotency_key_problem(it->value());
    if (where == shop::Route::create) {
        shop::OrderCreated order;
        if (!shop::parse_order(req.body(), order)) {
            // Accepted: what it stores is bounded and clean.
            if (order.items.empty() || order.items.size() > shop::kMaxItems || order.amount_cents < 1) __builtin_trap();
            for (const auto& item : order.items)
                if (item.quantity < 1 || shop::text_problem("sku", item.sku)) __builtin_trap();
            if (shop::text_problem("customer", order.customer)) __builtin_trap();
        }
    }
    return 0;
}
