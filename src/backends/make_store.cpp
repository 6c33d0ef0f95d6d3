#include <boong/backends.hpp>
#include <boong/memory/store.hpp>

#if BOONG_HAS_POSTGRES
#include <boong/postgres/store.hpp>
#endif

namespace boong {

AnyEventStore make_store(boost::asio::any_io_executor ex, const EventStoreConfig& config) {
    switch (config.type) {
        case EventStoreConfig::Type::memory:
            return AnyEventStore(std::make_unique<MemoryEventStore>(std::move(ex)));
        case EventStoreConfig::Type::postgres:
#if BOONG_HAS_POSTGRES
            return AnyEventStore(std::make_unique<PostgresEventStore>(std::move(ex), config.postgres));
#else
            throw Error(errc::invalid_config,
                        "eventStore.type \"postgres\": this Boong was built without it (BOONG_WITH_POSTGRES=OFF)");
#endif
    }
    throw Error(errc::invalid_config, "eventStore.type: unknown");
}

}  // namespace boong
