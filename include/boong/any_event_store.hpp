// AnyEventStore: any EventStore behind one type, so that a program picks its
// store at run time (from its configuration: make_store in
// <boong/backends.hpp>) and is compiled once. It is itself an EventStore and
// passes the same conformance suite as the stores it holds.
//
// It erases the EventStore operations only. Transactions (TransactionalStore:
// a service's own writes and its events in one commit) are typed by backend
// (a pqxx transaction, a memory one), so code that needs them names its store.
#pragma once

#include <boong/detail/erased_handler.hpp>
#include <boong/event_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace boong {

class AnyEventStore {
public:
    using executor_type = boost::asio::any_io_executor;

    // Takes the store over. async_open is forwarded when S has one, and
    // completes at once otherwise.
    template <class S>
    requires EventStore<S> &&(!std::same_as<S, AnyEventStore>)explicit AnyEventStore(std::unique_ptr<S> store)
        : model_(std::make_unique<Model<S>>(std::move(store))) {}

    AnyEventStore(AnyEventStore&&) noexcept = default;
    AnyEventStore& operator=(AnyEventStore&&) noexcept = default;

    executor_type get_executor() const { return model_->executor(); }
    // What is held, for messages: "postgres at host:port", "memory".
    std::string describe() const { return model_->describe(); }

    // Connects and prepares the held store (for PostgreSQL: the pool and the
    // schema). Other operations fail until it has succeeded.
    template <class Token>
    auto async_open(Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto h) { model_->open(detail::ErasedHandler<void>(std::move(h), model_->executor())); }, token);
    }

    template <class Token>
    auto async_append(std::string stream, ExpectedVersion expected, std::vector<EventData> events, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, AppendResult)>(
            [this](auto h, std::string s, ExpectedVersion e, std::vector<EventData> ev) {
                model_->append(std::move(s), e, std::move(ev),
                               detail::ErasedHandler<AppendResult>(std::move(h), model_->executor()));
            },
            token, std::move(stream), expected, std::move(events));
    }

    template <class Token>
    auto async_read_stream(std::string stream, std::int64_t from_version, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<RecordedEvent>)>(
            [this](auto h, std::string s, std::int64_t from, std::size_t max) {
                model_->read_stream(
                    std::move(s), from, max,
                    detail::ErasedHandler<std::vector<RecordedEvent>>(std::move(h), model_->executor()));
            },
            token, std::move(stream), from_version, max_count);
    }

    template <class Token>
    auto async_read_all(std::int64_t from_position, std::size_t max_count, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<RecordedEvent>)>(
            [this](auto h, std::int64_t from, std::size_t max) {
                model_->read_all(from, max,
                                 detail::ErasedHandler<std::vector<RecordedEvent>>(std::move(h), model_->executor()));
            },
            token, from_position, max_count);
    }

    template <class Token>
    auto async_save_snapshot(Snapshot snapshot, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
            [this](auto h, Snapshot s) {
                model_->save_snapshot(std::move(s), detail::ErasedHandler<void>(std::move(h), model_->executor()));
            },
            token, std::move(snapshot));
    }

    template <class Token>
    auto async_load_snapshot(std::string stream, Token&& token) {
        return boost::asio::async_initiate<Token, void(std::exception_ptr, std::optional<Snapshot>)>(
            [this](auto h, std::string s) {
                model_->load_snapshot(std::move(s),
                                      detail::ErasedHandler<std::optional<Snapshot>>(std::move(h), model_->executor()));
            },
            token, std::move(stream));
    }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual executor_type executor() const = 0;
        virtual std::string describe() const = 0;
        virtual void open(detail::ErasedHandler<void> done) = 0;
        virtual void append(std::string stream, ExpectedVersion expected, std::vector<EventData> events,
                            detail::ErasedHandler<AppendResult> done) = 0;
        virtual void read_stream(std::string stream, std::int64_t from, std::size_t max,
                                 detail::ErasedHandler<std::vector<RecordedEvent>> done) = 0;
        virtual void read_all(std::int64_t from, std::size_t max,
                              detail::ErasedHandler<std::vector<RecordedEvent>> done) = 0;
        virtual void save_snapshot(Snapshot snapshot, detail::ErasedHandler<void> done) = 0;
        virtual void load_snapshot(std::string stream, detail::ErasedHandler<std::optional<Snapshot>> done) = 0;
    };

    template <class S>
    struct Model final : Concept {
        explicit Model(std::unique_ptr<S> s) : store(std::move(s)) {}
        std::unique_ptr<S> store;

        executor_type executor() const override { return store->get_executor(); }
        std::string describe() const override {
            if constexpr (requires { store->endpoint(); }) {
                return "postgres at " + std::string(store->endpoint());
            } else {
                return "memory";
            }
        }
        void open(detail::ErasedHandler<void> done) override {
            if constexpr (requires { store->async_open(detail::CompleteErased<void>{std::move(done)}); }) {
                store->async_open(detail::CompleteErased<void>{std::move(done)});
            } else {
                done.complete(nullptr);
            }
        }
        void append(std::string stream, ExpectedVersion expected, std::vector<EventData> events,
                    detail::ErasedHandler<AppendResult> done) override {
            store->async_append(std::move(stream), expected, std::move(events),
                                detail::CompleteErased<AppendResult>{std::move(done)});
        }
        void read_stream(std::string stream, std::int64_t from, std::size_t max,
                         detail::ErasedHandler<std::vector<RecordedEvent>> done) override {
            store->async_read_stream(std::move(stream), from, max,
                                     detail::CompleteErased<std::vector<RecordedEvent>>{std::move(done)});
        }
        void read_all(std::int64_t from, std::size_t max,
                      detail::ErasedHandler<std::vector<RecordedEvent>> done) override {
            store->async_read_all(from, max, detail::CompleteErased<std::vector<RecordedEvent>>{std::move(done)});
        }
        void save_snapshot(Snapshot snapshot, detail::ErasedHandler<void> done) override {
            store->async_save_snapshot(std::move(snapshot), detail::CompleteErased<void>{std::move(done)});
        }
        void load_snapshot(std::string stream, detail::ErasedHandler<std::optional<Snapshot>> done) override {
            store->async_load_snapshot(std::move(stream),
                                       detail::CompleteErased<std::optional<Snapshot>>{std::move(done)});
        }
    };

    std::unique_ptr<Concept> model_;
};

static_assert(EventStore<AnyEventStore>);

}  // namespace boong
