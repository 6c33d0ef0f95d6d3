// Read-ahead for readers catching up with read_all: when a page comes back
// full, the next page is queried on another connection while this one is
// turned into events, so the server's work and the parsing overlap.
//
// Serving a page fetched earlier is exact, not stale: a full page holds the
// first `limit` events from its position, and no event can ever appear below
// one that is visible (see the append function), so that page never changes.
// Pages that come back short (the reader has caught up) are not kept.
#pragma once

#include "pool.hpp"

#include <boong/detail/erased_handler.hpp>
#include <boong/event.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace boong::pg {

class ReadAhead {
public:
    using Handler = detail::ErasedHandler<std::vector<RecordedEvent>>;

    ReadAhead(Pool& pool, std::shared_ptr<Counters> counters);

    // Answers read_all(from, limit) with a page fetched ahead, if there is
    // one (done: completes the handler; in flight: the handler waits for it).
    // Returns false, leaving the handler alone, when there is none.
    bool serve(std::int64_t from, std::int64_t limit, Handler& handler);

    // Runs a read_all page query on `session`: starts fetching the next page
    // when this one is full, then converts the rows.
    std::vector<RecordedEvent> fetch(Session& session, std::int64_t from, std::int64_t limit);

    struct Page;
    struct Shared;

private:
    void ahead(std::int64_t from, std::int64_t limit);

    Pool& pool_;
    std::shared_ptr<Shared> shared_;
};

}  // namespace boong::pg
