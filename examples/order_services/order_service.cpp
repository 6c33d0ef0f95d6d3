// The order service: the HTTP front door of the order flow, and the one that
// decides each order's fate.
//
//   POST /api/orders       {"customer", "items": [{"sku", "quantity"}], "amount", "payment_method"}
//                          [Idempotency-Key: <1..200 printable characters>]
//                          -> 202 {"order_id"}: OrderCreated stored in order-<id>
//                          -> 429 + Retry-After while too much work waits (--max-backlog)
//   GET  /api/orders/{id}  -> 200 {"order_id", "status", "reason", "history"}
//   GET  /metrics          -> 200 the process's metrics, Prometheus text format (docs/metrics.md)
//
// A POST with an Idempotency-Key is stored once: the same key and body return
// the same order id (202 again), across restarts and crashes between storing
// and replying; the same key with another body is 422. Requests that cannot be read are 400 (413 for a body over
// --max-body, 431 for headers over 8 KiB); a store or broker outage is 503
// "temporarily unavailable" with Retry-After, its details in the log.
//
// Events mode (default): it handles the payment's and the inventory's
// outcomes (PaymentProcessed / PaymentFailed, ItemsReserved /
// ItemsNotAvailable), records each in the order's stream, and, folding that
// stream, emits OrderConfirmed or OrderCancelled exactly once: the appends
// expect the version it read, so two outcomes handled at once cannot both
// decide (the loser's transaction rolls back and it decides again).
//
// Saga mode (--mode saga): no payment or inventory service; a SagaOrchestrator
// runs reserve items -> charge payment -> confirm (order_saga.hpp). Each saga is
// started from its OrderCreated event (through the order service's own
// consumer group), so an order stored is an order run, whatever crashes in
// between.
//
//   order_service --dsn DSN --redis HOST:PORT [--http PORT] [--table NAME] [--mode events|saga]
#include "common.hpp"
#include "order_request.hpp"
#include "order_saga.hpp"
#include "order_state.hpp"

#include <boost/beast.hpp>

#include <atomic>
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

Response json_response(unsigned version, bool keep_alive, http::status status, const boong::json& body) {
    Response res{status, version};
    res.set(http::field::server, "boong-order-service");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(keep_alive);
    res.body() = body.dump(-1, ' ', false, boong::json::error_handler_t::replace) + "\n";
    res.prepare_payload();
    return res;
}

Response json_response(const Request& req, http::status status, const boong::json& body) {
    return json_response(req.version(), req.keep_alive(), status, body);
}

Response error_response(unsigned version, bool keep_alive, http::status status, const std::string& message) {
    boong::json body = boong::json::object();
    body["error"] = message;
    return json_response(version, keep_alive, status, body);
}

Response error_response(const Request& req, http::status status, const std::string& message) {
    return error_response(req.version(), req.keep_alive(), status, message);
}

// What a request that could not be read gets, or nullopt when there is no
// one to answer (the client went away, or was idle too long).
std::optional<Response> unreadable(const boost::system::error_code& ec, std::int64_t max_body) {
    switch (status_for_unreadable(ec)) {
        case 413:
            return error_response(11, false, http::status::payload_too_large,
                                  "the request body is larger than " + std::to_string(max_body) + " bytes");
        case 431:
            return error_response(11, false, http::status::request_header_fields_too_large,
                                  "the request line and headers are larger than " + std::to_string(kHeaderLimit) +
                                      " bytes");
        case 400: return error_response(11, false, http::status::bad_request, "malformed HTTP request: " + ec.message());
        default: return std::nullopt;
    }
}

// Limits log lines about clients that keep doing the same wrong thing.
struct RateLimitedLog {
    std::chrono::steady_clock::time_point next{};
    long suppressed = 0;

    template <class... Args>
    void warn(spdlog::format_string_t<Args...> format, Args&&... args) {
        const auto now = std::chrono::steady_clock::now();
        if (now < next) {
            ++suppressed;
            return;
        }
        next = now + 10s;
        const auto text = fmt::format(format, std::forward<Args>(args)...);
        if (suppressed > 0) {
            spdlog::warn("{} (and {} more like it in the last 10 s)", text, suppressed);
        } else {
            spdlog::warn("{}", text);
        }
        suppressed = 0;
    }
};

class OrderService {
public:
    explicit OrderService(Process& p) : p_(p), max_backlog_(p.options().max_backlog) {
        if (p.options().mode == "saga") {
            steps_ = std::make_unique<OrderSagaSteps>(p.store(), p.options());
            p.setup([this, &p](pqxx::transaction_base& tx) { steps_->create_tables(tx, p.options()); });
            index_ = std::make_unique<boong::PostgresSagaIndex>(p.store());
            boong::OrchestratorOptions oo;
            oo.name = "order-saga";  // stable: a restarted service takes its sagas back at once
            oo.lease = 5s;
            oo.scan_interval = 1s;
            oo.observer = p.metrics();
            orchestrator_ = std::make_unique<OrderOrchestrator>(*steps_, p.store(), *index_, boong::SagaOptions{}, oo);
            // Sagas taken over after a restart end here: record their outcome too.
            orchestrator_->on_outcome([this](const std::string&, std::exception_ptr e, const auto& outcome) {
                if (!e) asio::co_spawn(p_.ioc(), finish_saga(outcome), asio::detached);
            });
        }
    }

    void subscribe() {
        auto& bus = p_.bus();
        if (orchestrator_) {
            bus.on<OrderCreated>([this](const OrderCreated& e, Context& ctx) { return run_saga(e, ctx); });
            return;
        }
        events_.subscribe(bus);
    }

    void start(tcp::endpoint endpoint) {
        if (orchestrator_) orchestrator_->start();
        acceptor_.emplace(p_.ioc(), endpoint);
        spdlog::info("order service ({} mode) listening on http://{}:{}", p_.options().mode,
                     endpoint.address().to_string(), acceptor_->local_endpoint().port());
        asio::co_spawn(p_.ioc(), accept_loop(), asio::detached);
        asio::co_spawn(p_.ioc(), watch_backlog(), asio::detached);
    }

    asio::awaitable<void> stop() {
        stopping_ = true;
        if (acceptor_) {
            boost::system::error_code ignored;
            acceptor_->close(ignored);
        }
        backlog_timer_.cancel();
        if (orchestrator_) co_await orchestrator_->stop();
    }

private:
    // ---- saga mode

    // Runs the order's saga (its id is the order's). Delivered again (a
    // restart, a slow saga): it is running or ran already, nothing to do; the
    // orchestrator sees to sagas whose process died.
    asio::awaitable<void> run_saga(const OrderCreated& order, Context& ctx) {
        boong::RunOptions ro;
        ro.saga_id = order.order_id;
        ro.correlation_id = ctx.correlation_id();
        ro.causation_id = ctx.event().event_id;
        OrderSagaData data{order};
        boong::SagaOutcome<OrderSagaData> outcome;
        bool ran = true;
        try {
            outcome = co_await orchestrator_->run(std::move(data), std::move(ro));
        } catch (const boong::Error& e) {
            const auto code = e.code();
            if (code != boong::errc::concurrency_conflict && code != boong::errc::saga_not_resumable) throw;
            ran = false;
        }
        if (ran) co_await finish_saga(std::move(outcome));
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

    // ---- backpressure: how much work waits

    // Every 250 ms: events stored and not yet published, plus OrderCreated
    // messages not yet handled by the slowest group that takes them (payment,
    // inventory; the saga runner in saga mode).
    asio::awaitable<void> watch_backlog() {
        std::int64_t unpublished = 0, unhandled = 0;
        boong::detail::OutageLog failing;
        while (!stopping_) {
            std::string why;
            try {
                auto status = co_await p_.outbox().async_status("bus", asio::use_awaitable);
                unpublished = status.pending;
                auto groups = co_await p_.broker().async_consumer_groups(std::string(OrderCreated::event_name),
                                                                         asio::use_awaitable);
                unhandled = 0;
                for (const auto& g : groups)
                    unhandled = std::max(unhandled, static_cast<std::int64_t>(g.pending.value_or(0) + g.lag.value_or(0)));
            } catch (const std::exception& e) {
                why = e.what();  // keep the last figures: a POST finds out for itself
            }
            const auto now = std::chrono::steady_clock::now();
            if (!why.empty()) spdlog::log(failing.failure(now), "backlog: cannot measure it: {}", why);
            else failing.success(now);
            backlog_ = unpublished + unhandled;
            backlog_timer_.expires_after(250ms);
            co_await backlog_timer_.async_wait(tuple_token);
        }
    }

    // ---- HTTP

    asio::awaitable<void> accept_loop() {
        auto delay = 50ms;  // after running out of descriptors, doubling to 1 s
        RateLimitedLog log;
        asio::steady_timer pause(p_.ioc());
        for (;;) {
            if (connections_ >= kMaxConnections) {
                // Serve the open ones; more wait in the listen queue.
                pause.expires_after(10ms);
                co_await pause.async_wait(tuple_token);
                continue;
            }
            auto [ec, socket] = co_await acceptor_->async_accept(tuple_token);
            if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
            if (ec) {
                // Out of descriptors (EMFILE, ENFILE) or memory: accepting
                // again at once would spin. Back off; open connections go on.
                log.warn("http accept: {}; pausing accepts for {} ms", ec.message(), delay.count());
                pause.expires_after(delay);
                co_await pause.async_wait(tuple_token);
                delay = std::min<std::chrono::milliseconds>(delay * 2, 1000ms);
                continue;
            }
            delay = 50ms;
            ++connections_;
            asio::co_spawn(p_.ioc(), session(std::move(socket)), [this](std::exception_ptr) { --connections_; });
        }
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(kHeaderLimit);
            parser.body_limit(static_cast<std::uint64_t>(p_.options().max_body));
            stream.expires_after(std::chrono::seconds(60));
            auto [ec, n] = co_await http::async_read(stream, buffer, parser, tuple_token);
            Response res;
            if (ec) {
                auto answer = unreadable(ec, p_.options().max_body);
                if (!answer) break;
                res = std::move(*answer);  // then close: what follows cannot be framed
            } else {
                const Request& req = parser.get();
                res = co_await handle_safely(req);
            }
            const bool keep_alive = res.keep_alive();
            auto [wec, wn] = co_await http::async_write(stream, res, tuple_token);
            if (wec || !keep_alive) break;
        }
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    // Failures that are nobody's fault are 503 (with the details in the log,
    // not in the answer); anything else a 500.
    asio::awaitable<Response> handle_safely(const Request& req) {
        std::exception_ptr error;
        try {
            co_return co_await handle(req);
        } catch (...) {
            error = std::current_exception();
        }
        const std::string what = boong::describe(error);
        const std::string target(req.target().substr(0, 200));
        if (boong::is_unavailable(error)) {
            unavailable_log_.warn("{} {}: temporarily unavailable: {}", std::string(req.method_string()), target, what);
            auto res = error_response(req, http::status::service_unavailable, "temporarily unavailable; try again");
            res.set(http::field::retry_after, "1");
            co_return res;
        }
        spdlog::error("{} {}: {}", std::string(req.method_string()), target, what);
        co_return error_response(req, http::status::internal_server_error, "internal error");
    }

    asio::awaitable<Response> handle(const Request& req) {
        std::string id;
        switch (route(req.method(), req.target(), id)) {
            case Route::create: co_return co_await create(req);
            case Route::get: co_return co_await get(req, id);
            case Route::create_wrong_method: {
                auto res = error_response(req, http::status::method_not_allowed, "use POST on /api/orders");
                res.set(http::field::allow, "POST");
                co_return res;
            }
            case Route::get_wrong_method: {
                auto res = error_response(req, http::status::method_not_allowed, "use GET on /api/orders/{id}");
                res.set(http::field::allow, "GET");
                co_return res;
            }
            case Route::no_order: co_return error_response(req, http::status::not_found, "no such order");
            case Route::metrics: {
                Response res{http::status::ok, req.version()};
                res.set(http::field::content_type, kMetricsContentType);
                res.keep_alive(req.keep_alive());
                res.body() = p_.metrics_text();
                res.prepare_payload();
                co_return res;
            }
            case Route::metrics_wrong_method: {
                auto res = error_response(req, http::status::method_not_allowed, "use GET on /metrics");
                res.set(http::field::allow, "GET");
                co_return res;
            }
            case Route::not_found: break;
        }
        co_return error_response(req, http::status::not_found, "no such resource");
    }

    asio::awaitable<Response> create(const Request& req) {
        OrderCreated order;
        if (auto problem = parse_order(req.body(), order)) {
            co_return error_response(req, http::status::bad_request, *problem);
        }
        std::optional<std::string> key;
        if (auto it = req.find("Idempotency-Key"); it != req.end()) {
            key = std::string(it->value());
            if (auto problem = idempotency_key_problem(*key)) {
                co_return error_response(req, http::status::bad_request, *problem);
            }
        }
        if (backlog_ > max_backlog_) {
            auto res = error_response(req, http::status::too_many_requests,
                                      "too much work waiting (" + std::to_string(backlog_.load()) +
                                          " messages); try again shortly");
            res.set(http::field::retry_after, "1");
            co_return res;
        }
        order.order_id = key ? order_id_for_key(*key) : boong::IdGenerator().next();
        std::vector<boong::EventData> events;
        events.push_back(boong::EventRegistry::encode(order));
        auto& created = events.front();
        if (key) created.event_id = order_created_id_for_key(*key, created.payload);
        created.metadata.correlation_id = created.event_id;  // a new flow
        const std::string event_id = created.event_id;
        const boong::json payload = created.payload;
        bool conflict = false;
        try {
            co_await p_.store().async_append(order_stream(order.order_id), boong::ExpectedVersion::no_stream(),
                                             std::move(events), asio::use_awaitable);
        } catch (const boong::ConcurrencyConflict&) {
            conflict = true;
        }
        boong::json body = boong::json::object();
        body["order_id"] = order.order_id;
        if (!conflict) co_return json_response(req, http::status::accepted, body);
        // The key was used before, for another order (a replay of the same
        // request is not a conflict: the store recognises its event id).
        co_return error_response(req, http::status::unprocessable_entity,
                                 "this Idempotency-Key was used for a different order (" + order.order_id + ")");
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
    std::optional<tcp::acceptor> acceptor_;
    std::unique_ptr<OrderSagaSteps> steps_;
    std::unique_ptr<boong::PostgresSagaIndex> index_;
    std::unique_ptr<OrderOrchestrator> orchestrator_;
    OrderHandlers<Bus> events_{[](std::string_view event_name, const std::string& order_id) {
        spdlog::warn("{} for unknown order {}: ignored", event_name, order_id);
    }};
    std::int64_t max_backlog_;
    std::atomic<std::int64_t> backlog_{0};
    asio::steady_timer backlog_timer_{p_.ioc()};
    std::size_t connections_ = 0;
    RateLimitedLog unavailable_log_;
    bool stopping_ = false;
};

}  // namespace
}  // namespace shop

int main(int argc, char** argv) try {
    shop::Process process(shop::parse_options("order", argc, argv));
    shop::OrderService service(process);
    service.subscribe();
    const auto port = static_cast<unsigned short>(process.options().http_port);
    service.start(shop::tcp::endpoint(shop::asio::ip::make_address("127.0.0.1"), port));
    return process.run([&service]() { return service.stop(); });
} catch (const std::exception& e) {
    std::cerr << "order_service: " << e.what() << "\n";
    return 2;
}
