// The order services end to end (CTest label `integration`): starts
// order_service, payment_service and inventory_service as processes on the
// test PostgreSQL (a fresh events table) and Redis (a database of its own),
// places 300 orders over HTTP (200 that succeed, 50 whose payment is declined,
// 50 whose items are out of stock), kills and restarts the payment service in
// the middle, waits until every order is final, and checks:
//   - each order's final status and reason;
//   - the compensations (declined: items released or never reserved; out of
//     stock: payment refunded or never charged) and no duplicate effects
//     (one event of each type per stream, payments table matching the
//     events, stock = seed - reserved + released);
//   - correlation: every event of an order's flow carries its OrderCreated's id;
//   - 400 for bad JSON and missing fields, 404 for unknown orders and paths, 405.
//
//   order_services_test   (env: BOONG_TEST_PG_DSN, BOONG_TEST_REDIS_HOST, BOONG_TEST_REDIS_PORT)
#include "../../examples/order_services/events.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <pqxx/pqxx>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#if !defined(ORDER_SERVICE_PATH) || !defined(PAYMENT_SERVICE_PATH) || !defined(INVENTORY_SERVICE_PATH)
#error "ORDER_SERVICE_PATH, PAYMENT_SERVICE_PATH and INVENTORY_SERVICE_PATH must name the executables"
#endif

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kHappy = 200, kDeclined = 50, kOutOfStock = 50;
constexpr auto kSettleLimit = 240s;

int failures = 0;
std::mutex out_mutex;
void check(bool ok, const std::string& what) {
    if (ok) return;
    std::lock_guard lock(out_mutex);
    if (++failures <= 40) std::cerr << "order_services: FAILED: " << what << "\n";
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) {
        std::cerr << "order_services: " << name << " is not set: run through scripts/test.sh\n";
        std::exit(2);
    }
    return v;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Reply {
    int status = 0;  // 0: no connection
    std::string body;
    json j() const { return json::parse(body, nullptr, false); }
};

Reply request(int port, http::verb method, const std::string& target, const std::string& body = {}) {
    try {
        asio::io_context ioc;
        tcp::socket socket(ioc);
        socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.set(http::field::content_type, "application/json");
        req.keep_alive(false);
        req.body() = body;
        req.prepare_payload();
        http::write(socket, req);
        boost::beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(socket, buffer, res);
        return Reply{static_cast<int>(res.result_int()), res.body()};
    } catch (const std::exception&) {
        return Reply{};
    }
}

int free_port() {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

// Empties the Redis database the services will use (its own: other tests use 0).
void flush_redis(const std::string& host, int port, int db) {
    asio::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(asio::ip::make_address(host), static_cast<unsigned short>(port)));
    const std::string cmd = "SELECT " + std::to_string(db) + "\r\nFLUSHDB\r\n";
    asio::write(s, asio::buffer(cmd));
    std::string got;
    char buf[64];
    while (got.find("+OK\r\n", got.find("+OK\r\n") + 1) == std::string::npos) {
        const auto n = s.read_some(asio::buffer(buf));
        got.append(buf, n);
        if (got.find('-') != std::string::npos) throw std::runtime_error("redis refused: " + got);
    }
}

enum class Kind { happy, declined, out_of_stock };
const char* name(Kind k) { return k == Kind::happy ? "happy" : k == Kind::declined ? "declined" : "out of stock"; }

struct Order {
    Kind kind = Kind::happy;
    std::string id;
    json final;
};

struct Service {
    std::string name;
    std::string path;
    pid_t pid = -1;
};

struct Driver {
    std::string dsn = env("BOONG_TEST_PG_DSN");
    std::string redis_host = env("BOONG_TEST_REDIS_HOST");
    int redis_port = std::stoi(env("BOONG_TEST_REDIS_PORT"));
    std::mt19937 rng{std::random_device{}()};
    std::string table;
    int redis_db = 0;
    int http_port = 0;
    std::vector<Service> services{{"order", ORDER_SERVICE_PATH}, {"payment", PAYMENT_SERVICE_PATH},
                                  {"inventory", INVENTORY_SERVICE_PATH}};

    Driver() {
        table = "svc_" + std::to_string(std::uniform_int_distribution<long>(1000000000L, 9999999999L)(rng));
        redis_db = std::uniform_int_distribution<int>(1, 15)(rng);
        http_port = free_port();
    }

    pqxx::result sql(const std::string& q) {
        pqxx::connection c(dsn);
        pqxx::nontransaction tx(c);
        return tx.exec(q);
    }

    void spawn(Service& s) {
        std::vector<std::string> args{s.path,     "--dsn",   dsn,   "--redis",    redis_host + ":" + std::to_string(redis_port),
                                      "--table",  table,     "--redis-db", std::to_string(redis_db),
                                      "--log-level", "warn"};
        if (s.name == "order") {
            args.push_back("--http");
            args.push_back(std::to_string(http_port));
        }
        const pid_t pid = fork();
        if (pid == 0) {
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        s.pid = pid;
    }

    void kill_service(Service& s, int sig) {
        if (s.pid <= 0) return;
        ::kill(s.pid, sig);
        if (sig == SIGKILL) {
            ::waitpid(s.pid, nullptr, 0);
        } else {
            // Graceful: give it a few seconds, then kill.
            const auto until = Clock::now() + 10s;
            int status = 0;
            while (::waitpid(s.pid, &status, WNOHANG) == 0) {
                if (Clock::now() > until) {
                    ::kill(s.pid, SIGKILL);
                    ::waitpid(s.pid, &status, 0);
                    break;
                }
                std::this_thread::sleep_for(50ms);
            }
            check(WIFEXITED(status) && WEXITSTATUS(status) == 0, s.name + " service did not stop cleanly on SIGTERM");
        }
        s.pid = -1;
    }

    void stop_all() {
        for (auto& s : services) kill_service(s, SIGTERM);
    }

    bool wait_ready() {
        const auto until = Clock::now() + 60s;
        while (Clock::now() < until) {
            for (auto& s : services) {
                int status = 0;
                if (s.pid > 0 && ::waitpid(s.pid, &status, WNOHANG) == s.pid) {
                    std::cerr << "order_services: " << s.name << " service exited at start-up\n";
                    s.pid = -1;
                    return false;
                }
            }
            if (request(http_port, http::verb::get, "/api/orders/none").status == 404) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }

    static std::string order_body(Kind k, int n) {
        json items = json::array();
        double amount = 10 + n % 90;
        if (k == Kind::out_of_stock) {
            items.push_back({{"sku", "widget"}, {"quantity", 1}});
            items.push_back({{"sku", "rare"}, {"quantity", 5}});  // 3 in stock, never more
        } else {
            items.push_back({{"sku", "widget"}, {"quantity", 1 + n % 3}});
            if (n % 2 == 0) items.push_back({{"sku", "gadget"}, {"quantity", 2}});
            if (k == Kind::declined) amount = 1000.01 + n;  // over the 1,000.00 limit
        }
        json body = {{"customer", "customer-" + std::to_string(n % 17)},
                     {"items", items},
                     {"amount", amount},
                     {"payment_method", "card"}};
        return body.dump();
    }

    void check_http_errors() {
        const auto bad_json = request(http_port, http::verb::post, "/api/orders", "{not json");
        check(bad_json.status == 400, "bad JSON: expected 400, got " + std::to_string(bad_json.status));
        check(bad_json.body.find("JSON") != std::string::npos, "bad JSON: the message names it: " + bad_json.body);
        const auto missing = request(http_port, http::verb::post, "/api/orders",
                                     R"({"customer": "x", "items": [{"sku": "widget", "quantity": 1}], "payment_method": "card"})");
        check(missing.status == 400, "missing amount: expected 400, got " + std::to_string(missing.status));
        check(missing.body.find("amount") != std::string::npos, "missing amount: the message names it: " + missing.body);
        const auto zero = request(http_port, http::verb::post, "/api/orders",
                                  R"({"customer": "x", "items": [{"sku": "widget", "quantity": 0}], "amount": 1, "payment_method": "card"})");
        check(zero.status == 400 && zero.body.find("quantity") != std::string::npos,
              "quantity 0: expected 400 naming quantity, got " + std::to_string(zero.status) + " " + zero.body);
        check(request(http_port, http::verb::get, "/api/orders/no-such-order").status == 404, "unknown order: 404");
        check(request(http_port, http::verb::get, "/nowhere").status == 404, "unknown path: 404");
        check(request(http_port, http::verb::delete_, "/api/orders/x").status == 405, "DELETE an order: 405");
        check(request(http_port, http::verb::get, "/api/orders").status == 405, "GET /api/orders: 405");
    }

    int run() {
        const auto t0 = Clock::now();
        std::cout << "order_services: table " << table << ", redis db " << redis_db << ", http port " << http_port
                  << "\n";
        flush_redis(redis_host, redis_port, redis_db);
        for (auto& s : services) spawn(s);
        if (!wait_ready()) {
            std::cerr << "order_services: FAILED: the order service did not answer within 60 s\n";
            stop_all();
            return 1;
        }
        std::cout << "order_services: services up in " << seconds_since(t0) << " s\n";
        check_http_errors();

        // 300 orders, kinds interleaved, placed by 4 clients; the payment
        // service is killed (SIGKILL) halfway and started again.
        std::vector<Order> orders;
        for (int i = 0; i < kHappy + kDeclined + kOutOfStock; ++i) {
            const int m = i % 6;
            orders.push_back(Order{m == 1 ? Kind::declined : m == 4 ? Kind::out_of_stock : Kind::happy, {}, {}});
        }
        const auto t_place = Clock::now();
        std::atomic<int> next{0}, placed{0};
        std::atomic<bool> restarted{false};
        std::mutex restart_mutex;
        auto client = [&] {
            for (int i; (i = next++) < static_cast<int>(orders.size());) {
                if (i == static_cast<int>(orders.size()) / 2) {
                    std::lock_guard lock(restart_mutex);
                    auto& payment = services[1];
                    kill_service(payment, SIGKILL);
                    std::cout << "order_services: killed the payment service after " << placed.load()
                              << " orders; starting it again\n";
                    spawn(payment);
                    restarted = true;
                }
                Reply r;
                for (int attempt = 0; attempt < 20 && r.status != 202; ++attempt) {
                    if (attempt) std::this_thread::sleep_for(200ms);
                    r = request(http_port, http::verb::post, "/api/orders", order_body(orders[i].kind, i));
                }
                check(r.status == 202, "POST order " + std::to_string(i) + ": " + std::to_string(r.status) + " " + r.body);
                if (r.status == 202) orders[i].id = r.j().value("order_id", "");
                ++placed;
            }
        };
        std::vector<std::thread> clients;
        for (int c = 0; c < 4; ++c) clients.emplace_back(client);
        for (auto& t : clients) t.join();
        check(restarted, "the payment service was restarted");
        std::cout << "order_services: placed " << placed << " orders in " << seconds_since(t_place) << " s\n";

        // Every order reaches a final status.
        const auto t_settle = Clock::now();
        std::size_t final_count = 0;
        while (Clock::now() - t_settle < kSettleLimit) {
            final_count = 0;
            for (auto& o : orders) {
                if (o.id.empty()) continue;
                if (!o.final.is_null()) {
                    ++final_count;
                    continue;
                }
                const auto r = request(http_port, http::verb::get, "/api/orders/" + o.id);
                if (r.status != 200) continue;
                auto j = r.j();
                if (j.value("status", "") != "pending") {
                    o.final = std::move(j);
                    ++final_count;
                }
            }
            if (final_count == orders.size()) break;
            std::this_thread::sleep_for(500ms);
        }
        std::cout << "order_services: " << final_count << " of " << orders.size() << " orders final after "
                  << seconds_since(t_settle) << " s more\n";
        check(final_count == orders.size(), "every order is final within " + std::to_string(kSettleLimit.count()) + " s");
        // Compensations may still be in flight when the order is decided:
        // wait until the streams are quiet before counting effects.
        wait_quiet();

        verify(orders);
        stop_all();
        std::cout << "order_services: " << (failures ? "FAILED" : "passed") << " (" << failures << " failed checks) in "
                  << seconds_since(t0) << " s\n";
        return failures ? 1 : 0;
    }

    // Until no event was stored for 4 s (longer than a redelivery takes: the
    // services' visibility timeout is 2 s), at most 60 s.
    void wait_quiet() {
        const auto until = Clock::now() + 60s;
        long long last = -1;
        while (Clock::now() < until) {
            const auto n = sql("SELECT count(*) FROM " + table)[0][0].as<long long>();
            if (n == last) return;
            last = n;
            std::this_thread::sleep_for(4s);
        }
    }

    void verify(const std::vector<Order>& orders) {
        // Every event of the run, per stream.
        std::map<std::string, std::vector<std::pair<std::string, json>>> streams;  // stream -> (type, payload)
        std::map<std::string, std::string> correlation;                            // stream -> ids seen
        for (const auto& row : sql("SELECT stream_id, type, payload::text, metadata ->> 'correlation_id' FROM " + table +
                                   " ORDER BY position")) {
            const auto stream = row[0].as<std::string>();
            streams[stream].emplace_back(row[1].as<std::string>(), json::parse(row[2].as<std::string>()));
            const std::string corr = row[3].is_null() ? "" : row[3].as<std::string>();
            auto& c = correlation[stream];
            if (c.empty()) c = corr;
            else if (c != corr) c = "mixed";
        }
        std::map<std::string, std::string> created_id;
        for (const auto& row : sql("SELECT stream_id, event_id::text FROM " + table + " WHERE type = 'OrderCreated'")) {
            created_id[row[0].as<std::string>()] = row[1].as<std::string>();
        }
        // No event type twice in one stream.
        for (const auto& [stream, events] : streams) {
            std::set<std::string> seen;
            for (const auto& [type, payload] : events) {
                check(seen.insert(type).second, stream + ": " + type + " stored twice");
            }
        }
        const auto types = [&](const std::string& stream) {
            std::set<std::string> t;
            auto it = streams.find(stream);
            if (it != streams.end())
                for (const auto& e : it->second) t.insert(e.first);
            return t;
        };
        std::map<std::string, std::int64_t> reserved, released;
        int refunds = 0, charged = 0, markers = 0;
        for (const auto& o : orders) {
            if (o.id.empty()) continue;
            const std::string what = std::string(name(o.kind)) + " order " + o.id;
            const auto status = o.final.value("status", "");
            const auto reason = o.final.value("reason", "");
            const auto pay = types(shop::payment_stream(o.id));
            const auto inv = types(shop::inventory_stream(o.id));
            const auto ord = types(shop::order_stream(o.id));
            check(ord.count("OrderConfirmed") + ord.count("OrderCancelled") == 1, what + ": decided exactly once");
            switch (o.kind) {
                case Kind::happy:
                    check(status == "confirmed", what + ": confirmed, not " + status + " " + reason);
                    check(pay == std::set<std::string>{"PaymentProcessed"}, what + ": charged once, never refunded");
                    check(inv == std::set<std::string>{"ItemsReserved"}, what + ": reserved once, never released");
                    break;
                case Kind::declined:
                    check(status == "cancelled" && reason.starts_with("payment declined: "),
                          what + ": cancelled for the payment, not " + status + " '" + reason + "'");
                    check(pay == std::set<std::string>{"PaymentFailed"}, what + ": payment failed, nothing charged");
                    check(inv == std::set<std::string>{"ItemsReserved", "ItemsReleased"} ||
                              inv == std::set<std::string>{"ReservationCancelled"},
                          what + ": items released (or never reserved)");
                    break;
                case Kind::out_of_stock:
                    check(status == "cancelled" && reason.starts_with("items not available: "),
                          what + ": cancelled for the items, not " + status + " '" + reason + "'");
                    check(inv == std::set<std::string>{"ItemsNotAvailable"}, what + ": items not available");
                    check(pay == std::set<std::string>{"PaymentProcessed", "PaymentRefunded"} ||
                              pay == std::set<std::string>{"PaymentCancelled"},
                          what + ": payment refunded (or never charged)");
                    break;
            }
            markers += static_cast<int>(pay.count("PaymentCancelled") + inv.count("ReservationCancelled"));
            // The whole flow carries the order's correlation id.
            const auto created = created_id[shop::order_stream(o.id)];
            for (const auto& s : {shop::order_stream(o.id), shop::payment_stream(o.id), shop::inventory_stream(o.id)}) {
                if (streams.count(s)) check(correlation[s] == created, s + ": correlated by its OrderCreated");
            }
            // The history a client sees has the order's events and the others'.
            check(o.final.contains("history") && o.final["history"].size() >= 3, what + ": history");
        }
        for (const auto& [stream, events] : streams) {
            for (const auto& [type, payload] : events) {
                if (type == "ItemsReserved")
                    for (const auto& i : payload.at("items")) reserved[i.at("sku")] += i.at("quantity").get<std::int64_t>();
                if (type == "ItemsReleased")
                    for (const auto& i : payload.at("items")) released[i.at("sku")] += i.at("quantity").get<std::int64_t>();
                if (type == "PaymentRefunded") ++refunds;
                if (type == "PaymentProcessed") ++charged;
            }
        }
        // Effects match the events: stock and payments.
        for (const auto& [sku, seed] : shop::seed_stock()) {
            const auto r = sql("SELECT available FROM " + table + "_stock WHERE sku = '" + sku + "'");
            const std::int64_t available = r.empty() ? -1 : r[0][0].as<std::int64_t>();
            check(available == seed - reserved[sku] + released[sku],
                  "stock of " + sku + ": " + std::to_string(available) + " = " + std::to_string(seed) + " - " +
                      std::to_string(reserved[sku]) + " reserved + " + std::to_string(released[sku]) + " released");
        }
        const auto pays = sql("SELECT count(*) FILTER (WHERE status = 'charged'), count(*) FILTER (WHERE status = 'refunded') FROM " +
                              table + "_payments")[0];
        check(pays[0].as<int>() + pays[1].as<int>() == charged, "one payment row per PaymentProcessed");
        check(pays[1].as<int>() == refunds, "one refunded payment per PaymentRefunded");
        check(pays[0].as<int>() == kHappy, "exactly the happy orders stay charged: " + std::to_string(pays[0].as<int>()));
        std::cout << "order_services: " << charged << " charged, " << refunds << " refunded, " << released["widget"]
                  << " widgets released, " << markers << " cancelled before the service saw the order\n";
    }
};

}  // namespace

int main() try {
    Driver d;
    const int rc = d.run();
    if (rc != 0) {
        // Leave nothing running.
        for (auto& s : d.services) d.kill_service(s, SIGKILL);
    }
    return rc;
} catch (const std::exception& e) {
    std::cerr << "order_services: FAILED: " << e.what() << "\n";
    return 1;
}
