// The order service: the HTTP front door of the order flow, and the one that
// decides each order's fate.
//
//   POST /api/orders       {"customer", "items": [{"sku", "quantity"}], "amount", "payment_method"}
//                          -> 202 {"order_id"}: OrderCreated stored in order-<id>
//   GET  /api/orders/{id}  -> 200 {"order_id", "status", "reason", "history"}
//
// Events mode (default): it handles the payment's and the inventory's
// outcomes (PaymentProcessed / PaymentFailed, ItemsReserved /
// ItemsNotAvailable), records each in the order's stream, and, folding that
// stream, emits OrderConfirmed or OrderCancelled exactly once: the appends
// expect the version it read, so two outcomes handled at once cannot both
// decide (the loser's transaction rolls back and it decides again).
//
// Saga mode (--mode saga): no payment or inventory service; a SagaOrchestrator
// runs reserve items -> charge payment -> confirm (order_saga.hpp).
//
//   order_service --dsn DSN --redis HOST:PORT [--http PORT] [--table NAME] [--mode events|saga]
#include "common.hpp"
#include "order_saga.hpp"
#include "order_state.hpp"

#include <boost/beast.hpp>

#include <cmath>
#include <optional>

namespace shop {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// co_await ... (tuple_token): errors as values (a named constant: no
// temporary inside the co_await expression).
constexpr auto tuple_token = asio::as_tuple(asio::use_awaitable);

Response json_response(const Request& req, http::status status, const boong::json& body) {
    Response res{status, req.version()};
    res.set(http::field::server, "boong-order-service");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = body.dump() + "\n";
    res.prepare_payload();
    return res;
}

Response error_response(const Request& req, http::status status, const std::string& message) {
    boong::json body = boong::json::object();
    body["error"] = message;
    return json_response(req, status, body);
}

// Reads a POST body into an OrderCreated, or says what is wrong with it.
std::optional<std::string> parse_order(const std::string& text, OrderCreated& out) {
    const auto j = boong::json::parse(text, nullptr, false);
    if (j.is_discarded()) return "the body is not valid JSON";
    if (!j.is_object()) return "the body must be a JSON object";
    const auto text_field = [&j](const char* name, std::string& to) -> std::optional<std::string> {
        if (!j.contains(name)) return std::string("missing field '") + name + "'";
        const auto& v = j.at(name);
        if (!v.is_string() || v.get<std::string>().empty()) {
            return std::string("field '") + name + "' must be a non-empty string";
        }
        to = v.get<std::string>();
        return std::nullopt;
    };
    if (auto e = text_field("customer", out.customer)) return e;
    if (auto e = text_field("payment_method", out.payment_method)) return e;
    if (!j.contains("items")) return "missing field 'items'";
    const auto& items = j.at("items");
    if (!items.is_array() || items.empty()) return "field 'items' must be a non-empty array";
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto& it = items[i];
        const std::string where = "items[" + std::to_string(i) + "]";
        if (!it.is_object()) return where + " must be an object";
        if (!it.contains("sku") || !it.at("sku").is_string() || it.at("sku").get<std::string>().empty()) {
            return where + ".sku must be a non-empty string";
        }
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

class OrderService {
public:
    explicit OrderService(Process& p) : p_(p), events_(p.events_table()) {
        if (p.options().mode == "saga") {
            steps_ = std::make_unique<OrderSagaSteps>(p.store(), p.options());
            steps_->create_tables(p.options());
            index_ = std::make_unique<boong::PostgresSagaIndex>(p.store());
            boong::OrchestratorOptions oo;
            oo.name = "order-saga";  // stable: a restarted service takes its sagas back at once
            oo.lease = 5s;
            oo.scan_interval = 1s;
            orchestrator_ = std::make_unique<OrderOrchestrator>(*steps_, p.store(), *index_, boong::SagaOptions{}, oo);
            // Sagas taken over after a restart end here: record their outcome too.
            orchestrator_->on_outcome([this](const std::string&, std::exception_ptr e, const auto& outcome) {
                if (!e) asio::co_spawn(p_.ioc(), finish_saga(outcome), asio::detached);
            });
        }
    }

    void subscribe() {
        if (orchestrator_) return;
        auto& bus = p_.bus();
        bus.on<PaymentProcessed>([this](const PaymentProcessed& e, boong::HandlerContext& ctx) {
            return learn(ctx, e.order_id, OrderPaid{e.order_id, e.payment_id});
        });
        bus.on<PaymentFailed>([this](const PaymentFailed& e, boong::HandlerContext& ctx) {
            return learn(ctx, e.order_id, OrderPaymentDeclined{e.order_id, e.reason});
        });
        bus.on<ItemsReserved>([this](const ItemsReserved& e, boong::HandlerContext& ctx) {
            return learn(ctx, e.order_id, OrderItemsReserved{e.order_id});
        });
        bus.on<ItemsNotAvailable>([this](const ItemsNotAvailable& e, boong::HandlerContext& ctx) {
            return learn(ctx, e.order_id, OrderItemsUnavailable{e.order_id, e.reason});
        });
    }

    void start(tcp::endpoint endpoint) {
        if (orchestrator_) orchestrator_->start();
        acceptor_.emplace(p_.ioc(), endpoint);
        spdlog::info("order service ({} mode) listening on http://{}:{}", p_.options().mode,
                     endpoint.address().to_string(), acceptor_->local_endpoint().port());
        asio::co_spawn(p_.ioc(), accept_loop(), asio::detached);
    }

    asio::awaitable<void> stop() {
        if (acceptor_) {
            boost::system::error_code ignored;
            acceptor_->close(ignored);
        }
        if (orchestrator_) co_await orchestrator_->stop();
    }

private:
    // ---- events mode: what the order service learns, and what it decides

    template <class Learned>
    asio::awaitable<void> learn(boong::HandlerContext& ctx, std::string order_id, Learned learned) {
        auto make = [this, &order_id, &learned] {
            return [this, &order_id, &learned](pqxx::transaction_base& tx, boong::Reaction& r) {
                const auto stream = order_stream(order_id);
                const auto order = read_stream_in(tx, events_, stream);
                if (order.version == 0) {
                    spdlog::warn("{} for unknown order {}: ignored", Learned::event_name, order_id);
                    return;
                }
                if (order.has(Learned::event_name)) return;  // learned already
                auto state = fold_order(order.events);
                const bool decided = state.decided();
                r.emit(stream, learned, order.expected());  // fails if the stream moved since we read it
                auto as_event = boong::EventRegistry::encode(learned);
                state.apply(as_event);
                if (decided) return;
                if (state.should_cancel()) {
                    r.emit(stream, OrderCancelled{order_id, state.cancel_reason()});
                } else if (state.should_confirm()) {
                    r.emit(stream, OrderConfirmed{order_id});
                }
            };
        };
        co_await react_retrying(ctx, make);
    }

    // ---- saga mode

    asio::awaitable<void> run_saga(OrderSagaData data, boong::RunOptions options) {
        const std::string order_id = data.order.order_id;
        try {
            auto outcome = co_await orchestrator_->run(std::move(data), std::move(options));
            co_await finish_saga(outcome);
        } catch (const std::exception& e) {
            // Interrupted (a shutdown): the orchestrator resumes it later.
            spdlog::warn("order {}: saga stopped here: {}", order_id, e.what());
        }
    }

    asio::awaitable<void> finish_saga(boong::SagaOutcome<OrderSagaData> outcome) {
        if (outcome.status == boong::SagaStatus::completed) co_return;  // confirm_order recorded it
        std::string reason = outcome.error;
        if (outcome.status == boong::SagaStatus::failed) reason += " (compensation failed: " + outcome.compensation_error + ")";
        const std::string order_id = outcome.data.order.order_id;
        OrderCancelled cancelled{order_id, reason};
        std::string correlation = outcome.saga_id;
        co_await steps_->record(order_id, std::move(cancelled), std::move(correlation));
    }

    // ---- HTTP

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_->async_accept(tuple_token);
            if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
            if (ec) {
                spdlog::warn("http accept: {}", ec.message());
                continue;
            }
            asio::co_spawn(p_.ioc(), session(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            Request req;
            stream.expires_after(std::chrono::seconds(60));
            auto [ec, n] = co_await http::async_read(stream, buffer, req, tuple_token);
            if (ec) break;  // closed, timed out, or not HTTP
            Response res;
            try {
                res = co_await handle(req);
            } catch (const std::exception& e) {
                spdlog::error("{} {}: {}", std::string(req.method_string()), std::string(req.target()), e.what());
                res = error_response(req, http::status::service_unavailable, std::string("try again: ") + e.what());
            }
            const bool keep_alive = res.keep_alive();
            auto [wec, wn] = co_await http::async_write(stream, res, tuple_token);
            if (wec || !keep_alive) break;
        }
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    asio::awaitable<Response> handle(const Request& req) {
        std::string path(req.target());
        if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
        const std::string prefix = "/api/orders";
        if (path == prefix || path == prefix + "/") {
            if (req.method() != http::verb::post) {
                auto res = error_response(req, http::status::method_not_allowed, "use POST on /api/orders");
                res.set(http::field::allow, "POST");
                co_return res;
            }
            co_return co_await create(req);
        }
        if (path.starts_with(prefix + "/")) {
            const std::string id = path.substr(prefix.size() + 1);
            if (id.find('/') != std::string::npos) co_return error_response(req, http::status::not_found, "no such resource");
            if (req.method() != http::verb::get) {
                auto res = error_response(req, http::status::method_not_allowed, "use GET on /api/orders/{id}");
                res.set(http::field::allow, "GET");
                co_return res;
            }
            co_return co_await get(req, id);
        }
        co_return error_response(req, http::status::not_found, "no such resource: " + path);
    }

    asio::awaitable<Response> create(const Request& req) {
        OrderCreated order;
        if (auto problem = parse_order(req.body(), order)) {
            co_return error_response(req, http::status::bad_request, *problem);
        }
        order.order_id = boong::IdGenerator().next();
        std::string stream = order_stream(order.order_id);
        const auto new_stream = boong::ExpectedVersion::no_stream();
        boong::EventMetadata new_flow;  // empty: the OrderCreated's own id becomes the correlation id
        const OrderCreated created = order;
        co_await p_.bus().publish(std::move(stream), created, new_stream, std::move(new_flow));
        if (orchestrator_) {
            boong::RunOptions ro;
            ro.saga_id = order.order_id;
            ro.correlation_id = order.order_id;
            OrderSagaData data{order};
            asio::co_spawn(p_.ioc(), run_saga(std::move(data), std::move(ro)), asio::detached);
        }
        boong::json body = boong::json::object();
        body["order_id"] = order.order_id;
        co_return json_response(req, http::status::accepted, body);
    }

    asio::awaitable<Response> get(const Request& req, const std::string& id) {
        std::vector<boong::RecordedEvent> all;
        std::vector<std::string> streams{order_stream(id), payment_stream(id), inventory_stream(id)};
        if (orchestrator_) streams.push_back(boong::saga_stream(id));
        for (auto& s : streams) {
            std::string name = s;
            auto events = co_await p_.store().async_read_stream(std::move(name), 1, 1000, asio::use_awaitable);
            if (s == streams.front() && events.empty()) {
                co_return error_response(req, http::status::not_found, "no order " + id);
            }
            for (auto& e : events) all.push_back(std::move(e));
        }
        OrderState state;
        boong::json history = boong::json::array();
        std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.position < b.position; });
        for (const auto& e : all) {
            if (e.stream_id == streams.front()) state.apply(e.event);
            boong::json h = e.event.payload.is_object() ? e.event.payload : boong::json::object();
            h["type"] = e.event.type;
            h["stream"] = e.stream_id;
            h["version"] = e.version;
            h["at"] = boong::format_timestamp(e.event.metadata.timestamp);
            history.push_back(std::move(h));
        }
        boong::json body = boong::json::object();
        body["order_id"] = id;
        body["status"] = state.status;
        if (state.status == "cancelled") body["reason"] = state.reason;
        body["history"] = std::move(history);
        co_return json_response(req, http::status::ok, body);
    }

    Process& p_;
    std::string events_;
    std::optional<tcp::acceptor> acceptor_;
    std::unique_ptr<OrderSagaSteps> steps_;
    std::unique_ptr<boong::PostgresSagaIndex> index_;
    std::unique_ptr<OrderOrchestrator> orchestrator_;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("order", argc, argv));
    shop::OrderService service(process);
    service.subscribe();
    const auto port = static_cast<unsigned short>(process.options().http_port);
    service.start(shop::tcp::endpoint(shop::asio::ip::make_address("127.0.0.1"), port));
    process.run([&service]() { return service.stop(); });
    return 0;
} catch (const std::exception& e) {
    std::cerr << "order_service: " << e.what() << "\n";
    return 2;
}
