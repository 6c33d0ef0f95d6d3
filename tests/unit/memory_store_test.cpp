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
