#include <boong/backends.hpp>
#include <boong/memory/store.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

struct MemoryStoreFixture {
    boost::asio::io_context context;
    boong::MemoryEventStore memory{context.get_executor()};
    boost::asio::io_context& ioc() { return context; }
    boong::MemoryEventStore& store() { return memory; }
    std::string unique(std::string_view base) { return std::string(base); }
};

// The memory store made from configuration (eventStore.type "memory"),
// behind AnyEventStore: the erasure passes the suite too.
struct AnyMemoryStoreFixture {
    boost::asio::io_context context;
    boong::AnyEventStore any = boong::make_store(context.get_executor(), boong::EventStoreConfig{});
    boost::asio::io_context& ioc() { return context; }
    boong::AnyEventStore& store() { return any; }
    std::string unique(std::string_view base) { return std::string(base); }
};

}  // namespace

#define BOONG_STORE_FIXTURES MemoryStoreFixture, AnyMemoryStoreFixture
#include "conformance/event_store_conformance.hpp"
#undef BOONG_STORE_FIXTURES
#define BOONG_STORE_FIXTURES MemoryStoreFixture
#include "conformance/transactional_store_conformance.hpp"

TEST_CASE("the memory store completes through the io_context, never inline", "[store][memory]") {
    boost::asio::io_context ioc;
    boong::MemoryEventStore store(ioc.get_executor());
    boong::IdGenerator ids;
    bool done = false;
    store.async_append("s", boong::ExpectedVersion::any(),
                       std::vector<boong::EventData>{boong::test::make_event(ids, "E")},
                       [&](std::exception_ptr e, boong::AppendResult) {
                           CHECK_FALSE(e);
                           done = true;
                       });
    CHECK_FALSE(done);
    ioc.run();
    CHECK(done);
    CHECK(store.stream_version("s") == 1);
    CHECK(store.last_position() == 1);
}

// The id index is an open-addressing table: a refused append removes the ids it
// had indexed by shifting entries back. After many such undos, mixed with
// growth, every stored id must still be found and every undone one be free.
TEST_CASE("the memory store's id index survives undone appends and growth", "[store][memory]") {
    using namespace boong;
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    IdGenerator ids;
    std::vector<EventData> stored;  // every event the store holds, in order
    std::vector<EventData> undone;  // events of refused appends: never stored
    for (int round = 0; round < 400; ++round) {
        const std::string stream = "s-" + std::to_string(round);
        std::vector<EventData> batch;
        for (int i = 0; i < 12; ++i) batch.push_back(test::make_event(ids, "E"));
        if (round % 3 == 1) {
            // Fresh ids, then one already stored: the whole append is undone.
            auto refused = batch;
            refused.push_back(stored[static_cast<std::size_t>(round * 7) % stored.size()]);
            CHECK(test::code_of([&] { store.append(stream, ExpectedVersion::no_stream(), refused); }) ==
                  errc::duplicate_event);
            CHECK(store.stream_version(stream) == 0);
            undone.insert(undone.end(), batch.begin(), batch.end());
            continue;
        }
        store.append(stream, ExpectedVersion::no_stream(), batch);
        stored.insert(stored.end(), batch.begin(), batch.end());
    }
    REQUIRE(store.last_position() == static_cast<std::int64_t>(stored.size()));
    // Every stored id is still indexed: reusing it elsewhere is refused...
    for (std::size_t i = 0; i < stored.size(); i += 5) {
        CHECK(test::code_of([&] { store.append("elsewhere", ExpectedVersion::any(), {stored[i]}); }) ==
              errc::duplicate_event);
    }
    // ...and a retry of a stored append is recognised (idempotent).
    const std::vector<EventData> first_batch(stored.begin(), stored.begin() + 12);
    const auto again = store.append("s-0", ExpectedVersion::no_stream(), first_batch);
    CHECK(again.first_position == 1);
    CHECK(again.next_expected_version == 12);
    // Every undone id is free again.
    for (std::size_t i = 0; i < undone.size(); i += 12) {
        const std::vector<EventData> batch(undone.begin() + static_cast<std::ptrdiff_t>(i),
                                           undone.begin() + static_cast<std::ptrdiff_t>(i + 12));
        CHECK_NOTHROW(store.append("late-" + std::to_string(i), ExpectedVersion::no_stream(), batch));
    }
    CHECK(store.last_position() == static_cast<std::int64_t>(stored.size() + undone.size()));
}

TEST_CASE("the memory store's transactions undo streams, ids and inbox records, and refuse re-entry",
          "[store][memory][transaction]") {
    using namespace boong;
    boost::asio::io_context ioc;
    MemoryEventStore store(ioc.get_executor());
    IdGenerator ids;
    const auto kept = test::make_event(ids, "Kept");
    store.append("old", ExpectedVersion::no_stream(), {kept});

    std::vector<std::string> undone;
    const auto fresh = test::make_event(ids, "Fresh");
    CHECK_THROWS_WITH(store.transact([&](MemoryEventStore::Transaction& tx) {
        tx.on_rollback([&] { undone.push_back("first"); });
        store.append_in(tx, "old", ExpectedVersion::exactly(1), {test::make_event(ids, "More")});
        store.append_in(tx, "new", ExpectedVersion::no_stream(), {fresh});
        store.record_processed_in(tx, "c", "m");
        tx.on_rollback([&] { undone.push_back("second"); });
        // The store's own functions would wait for the transaction forever.
        CHECK(test::code_of([&] { store.append("x", ExpectedVersion::any(), {test::make_event(ids, "X")}); }) ==
              errc::invalid_argument);
        CHECK(test::code_of([&] { store.transact([](MemoryEventStore::Transaction&) {}); }) == errc::invalid_argument);
        throw std::runtime_error("body failed");
    }),
                      "body failed");
    CHECK(undone == std::vector<std::string>{"second", "first"});
    CHECK(store.last_position() == 1);
    CHECK(store.stream_version("old") == 1);
    CHECK(store.stream_version("new") == 0);
    CHECK(store.read_all(1, 10).size() == 1);
    // The undone ids and stream are free; the record is gone.
    store.append("new", ExpectedVersion::no_stream(), {fresh});
    CHECK(store.read_stream("new", 1, 10).at(0).position == 2);
    CHECK(store.transact([&](MemoryEventStore::Transaction& tx) { return !store.processed_in(tx, "c", "m"); }));
    // Other threads wait for the transaction rather than see half of it.
    std::atomic<bool> appended{false};
    std::thread other;
    const auto t = test::make_event(ids, "T"), u = test::make_event(ids, "U");
    store.transact([&](MemoryEventStore::Transaction& tx) {
        other = std::thread([&] {
            store.append("t", ExpectedVersion::any(), {t});
            appended = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        CHECK_FALSE(appended);
        store.append_in(tx, "u", ExpectedVersion::any(), {u});
    });
    other.join();
    CHECK(appended);
    CHECK(store.read_stream("u", 1, 1).at(0).position == 3);
    CHECK(store.read_stream("t", 1, 1).at(0).position == 4);
}

TEST_CASE("make_store: memory by default, and it says what it holds", "[store][backends]") {
    boost::asio::io_context ioc;
    auto store = boong::make_store(ioc.get_executor(), boong::EventStoreConfig{});
    CHECK(store.describe() == "memory");
    // Opening a store that needs no connection completes at once.
    bool opened = false;
    store.async_open([&](std::exception_ptr e) { opened = !e; });
    ioc.run();
    CHECK(opened);
}
