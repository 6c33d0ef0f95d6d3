// The in-memory models of OutboxCursor and SagaIndex against their
// conformance suites, and the orchestrator's takeover scenarios on them (the
// PostgreSQL models run the same suites in tests/integration).
#include <boong/memory/outbox.hpp>
#include <boong/memory/sagas.hpp>
#include <boong/memory/store.hpp>
#include <boong/memory/subject_keys.hpp>

#include "support/async.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace {

struct MemoryModelsFixture {
    boost::asio::io_context context;
    boong::MemoryEventStore memory{context.get_executor()};
    boong::MemoryOutbox outbox{memory};
    boong::MemorySagaIndex sagas{memory};
    boong::MemorySubjectKeys subject_keys{context.get_executor()};
    boost::asio::io_context& ioc() { return context; }
    boong::MemorySubjectKeys& keys() { return subject_keys; }
    boong::MemoryEventStore& store() { return memory; }
    boong::MemoryOutbox& cursor() { return outbox; }
    boong::MemorySagaIndex& index() { return sagas; }
    std::string unique(std::string_view base) { return std::string(base); }
};

// The orchestrator scenarios' world (support/durable_world.hpp).
struct MemoryWorld {
    boost::asio::io_context ioc;
    boong::MemoryEventStore store{ioc.get_executor()};
    boong::MemorySagaIndex index{store};

    std::optional<boong::SagaRecord> record(const std::string& id) { return index.find(id); }
    bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
        return boong::test::run_until(ioc, done, limit);
    }
};

}  // namespace

#define BOONG_ORCHESTRATOR_WORLDS MemoryWorld
#include "conformance/orchestrator_conformance.hpp"
#include "conformance/versioning_conformance.hpp"
#include "conformance/operator_conformance.hpp"
#define BOONG_CURSOR_FIXTURES MemoryModelsFixture
#include "conformance/outbox_cursor_conformance.hpp"
#define BOONG_SAGA_INDEX_FIXTURES MemoryModelsFixture
#include "conformance/saga_index_conformance.hpp"
#define BOONG_SUBJECT_KEYS_FIXTURES MemoryModelsFixture
#include "conformance/subject_keys_conformance.hpp"
