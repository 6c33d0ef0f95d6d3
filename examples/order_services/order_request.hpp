// Reading an order request, without I/O: the framing limits, what a request
// that cannot be read is answered, the routes, and the checks of a POST body
// and of an Idempotency-Key. The order service uses these; so does the
// fuzzer that feeds them hostile bytes (tests/fuzz/fuzz_order_request.cpp).
#pragma once

#include "events.hpp"

#include <boost/beast/http.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shop {

inline constexpr std::uint32_t kHeaderLimit = 8 * 1024;  // request line and headers
inline constexpr std::size_t kMaxConnections = 1000;     // more wait in the listen queue
inline constexpr std::size_t kMaxText = 200;             // customer, payment_method, sku, Idempotency-Key
inline constexpr std::size_t kMaxItems = 100;

// Text a person typed: 1..kMaxText bytes, no control characters (NUL among
// them: PostgreSQL cannot store it). json::parse has checked it is UTF-8.
inline std::optional<std::string> text_problem(const std::string& name, const std::string& s) {
    if (s.empty()) return name + " must be a non-empty string";
    if (s.size() > kMaxText) return name + " is longer than " + std::to_string(kMaxText) + " bytes";
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return name + " must not contain control characters";
    return std::nullopt;
}

// Reads a POST body into an OrderCreated, or says what is wrong with it.
inline std::optional<std::string> parse_order(const std::string& text, OrderCreated& out) {
    const auto j = boong::json::parse(text, nullptr, false);
    if (j.is_discarded()) return "the body is not valid JSON";
    if (!j.is_object()) return "the body must be a JSON object";
    const auto text_field = [&j](const char* name, std::string& to) -> std::optional<std::string> {
        if (!j.contains(name)) return std::string("missing field '") + name + "'";
        const auto& v = j.at(name);
        if (!v.is_string()) return std::string("field '") + name + "' must be a non-empty string";
        to = v.get<std::string>();
        return text_problem(std::string("field '") + name + "'", to);
    };
    if (auto e = text_field("customer", out.customer)) return e;
    if (auto e = text_field("payment_method", out.payment_method)) return e;
    if (!j.contains("items")) return "missing field 'items'";
    const auto& items = j.at("items");
    if (!items.is_array() || items.empty()) return "field 'items' must be a non-empty array";
    if (items.size() > kMaxItems) return "field 'items' has more than " + std::to_string(kMaxItems) + " entries";
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto& it = items[i];
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!it.is_object()) return where + " must be an object";
        if (!it.contains("sku") || !it.at("sku").is_string()) return where + ".sku must be a non-empty string";
        if (auto e = text_problem(where + ".sku", it.at("sku").get<std::string>())) return e;
        if (!it.contains("quantity") || !it.at("quantity").is_number_integer() ||
            it.at("quantity").get<std::int64_t>() <= 0 || it.at("quantity").get<std::int64_t>() > 1000000000) {
            return where + ".quantity must be an integer in 1..1000000000";
        }
        out.items.push_back(Item{it.at("sku").get<std::string>(), it.at("quantity").get<std::int64_t>()});
    }
    if (!j.contains("amount")) return "missing field 'amount'";
    const auto& amount = j.at("amount");
    if (!amount.is_number() || !std::isfinite(amount.get<double>()) || amount.get<double>() <= 0 ||
        amount.get<double>() > 1e12) {
        return "field 'amount' must be a number > 0";
    }
    out.amount_cents = static_cast<std::int64_t>(std::llround(amount.get<double>() * 100));
    if (out.amount_cents < 1) return "field 'amount' must be at least 0.01";
    return std::nullopt;
}

// Why an Idempotency-Key cannot be used, or nullopt.
inline std::optional<std::string> idempotency_key_problem(std::string_view key) {
    const bool printable = std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (key.empty() || key.size() > kMaxText || !printable)
        return "Idempotency-Key must be 1.." + std::to_string(kMaxText) + " printable ASCII characters";
    return std::nullopt;
}

// The HTTP status a request that could not be read gets (413, 431 or 400),
// or 0 when there is no one to answer: the error is not the parser's (the
// client went away, or was idle too long), or the connection ended between
// or inside requests.
inline int status_for_unreadable(const boost::system::error_code& ec) {
    namespace http = boost::beast::http;
    if (ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
        ec == http::error::end_of_stream || ec == http::error::partial_message) {
        return 0;
    }
    if (ec == http::error::body_limit) return 413;
    if (ec == http::error::header_limit) return 431;
    return 400;
}

enum class Route { create, get, create_wrong_method, get_wrong_method, no_order, metrics, metrics_wrong_method, not_found };

// Where a request goes; for Route::get, `id` is the order id (a UUID: order
// ids are, so anything else is no order, without asking the store).
inline Route route(boost::beast::http::verb method, std::string_view target, std::string& id) {
    namespace http = boost::beast::http;
    std::string_view path = target;
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    if (path == "/metrics") return method == http::verb::get ? Route::metrics : Route::metrics_wrong_method;
    constexpr std::string_view prefix = "/api/orders";
    if (path == prefix || path == "/api/orders/")
        return method == http::verb::post ? Route::create : Route::create_wrong_method;
    if (!path.starts_with("/api/orders/")) return Route::not_found;
    if (method != http::verb::get) return Route::get_wrong_method;
    const std::string_view candidate = path.substr(prefix.size() + 1);
    if (!boong::is_uuid(candidate)) return Route::no_order;
    id = std::string(candidate);
    return Route::get;
}

}  // namespace shop
