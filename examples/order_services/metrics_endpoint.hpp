// GET /metrics for the services without an HTTP server of their own
// (payment, inventory): a small HTTP/1.1 listener on its own port that
// answers with the registry's text. The order service serves /metrics on its
// API server instead.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace shop {

// The exposition format's content type (Prometheus text format 0.0.4).
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsEndpoint {
public:
    // `text` renders the registry (called on the io_context's thread).
    MetricsEndpoint(boost::asio::io_context& ioc, int port, std::function<std::string()> text)
        : acceptor_(ioc, {boost::asio::ip::tcp::v4(), static_cast<unsigned short>(port)}), text_(std::move(text)) {}

    void start() { boost::asio::co_spawn(acceptor_.get_executor(), accept(), boost::asio::detached); }
    // Stops accepting; a scrape in progress finishes on its own.
    void stop() {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

private:
    boost::asio::awaitable<void> accept() {
        for (;;) {
            boost::system::error_code ec;
            auto socket = co_await acceptor_.async_accept(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
            if (ec) co_return;  // closed by stop()
            boost::asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), boost::asio::detached);
        }
    }

    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket) {
        namespace http = boost::beast::http;
        boost::beast::tcp_stream stream(std::move(socket));
        stream.expires_after(std::chrono::seconds(10));  // a scraper that stalls is dropped
        try {
            boost::beast::flat_buffer buffer;
            http::request<http::empty_body> req;
            co_await http::async_read(stream, buffer, req, boost::asio::use_awaitable);
            http::response<http::string_body> res;
            res.version(req.version());
            res.keep_alive(false);
            std::string_view path = req.target();
            path = path.substr(0, path.find('?'));
            if (req.method() == http::verb::get && path == "/metrics") {
                res.result(http::status::ok);
                res.set(http::field::content_type, kMetricsContentType);
                res.body() = text_();
            } else {
                res.result(http::status::not_found);
                res.set(http::field::content_type, "text/plain");
                res.body() = "GET /metrics\n";
            }
            res.prepare_payload();
            co_await http::async_write(stream, res, boost::asio::use_awaitable);
        } catch (const std::exception& e) {
            spdlog::debug("metrics endpoint: {}", e.what());
        }
        boost::system::error_code ignored;
        stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    }

    boost::asio::ip::tcp::acceptor acceptor_;
    std::function<std::string()> text_;
};

}  // namespace shop
