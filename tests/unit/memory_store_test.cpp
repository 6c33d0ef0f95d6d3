#include <boong/store/memory.hpp>

#include <boost/asio/io_context.hpp>

#include <string>

namespace {

struct MemoryStoreFixture {
    boost::asio::io_context context;
    boong::MemoryEventStore memory{context.get_executor()};
    boost::asio::io_context& ioc() { return context; }
    boong::MemoryEventStore& store() { return memory; }
    std::string unique(std::string_view base) { return std::string(base); }
};

}  // namespace

#define BOONG_STORE_FIXTURES MemoryStoreFixture
#include "conformance/event_store_conformance.hpp"

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
