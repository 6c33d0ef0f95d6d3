#include "read_ahead.hpp"

#include "rows.hpp"
#include "schema.hpp"

#include <pqxx/nontransaction>
#include <pqxx/result>

#include <algorithm>

namespace boong::pg {
namespace {

// Pages fetched ahead and not yet asked for, at most: two keep the server
// busy while a page is parsed and another handed over. A reader that stops
// leaves at most this many pages in memory, for at most kKeep.
constexpr std::size_t kPagesAhead = 2;
constexpr auto kKeep = std::chrono::seconds(10);

}  // namespace

struct ReadAhead::Page {
    std::int64_t from = 0;
    std::int64_t limit = 0;
    std::chrono::steady_clock::time_point made;
    bool done = false;
    std::vector<RecordedEvent> events;
    Handler waiter;  // the read_all that asked for this page while it was in flight
};

struct ReadAhead::Shared {
    std::mutex mutex;
    std::deque<std::shared_ptr<Page>> pages;  // oldest first
    std::shared_ptr<Counters> counters;

    void drop_old(std::chrono::steady_clock::time_point now) {
        std::erase_if(pages, [&](const auto& p) { return p->done && now - p->made > kKeep; });
    }
};

namespace {

// Fetches one page ahead, for whoever asks for it.
class AheadJob final : public Job {
public:
    AheadJob(ReadAhead& owner, std::shared_ptr<ReadAhead::Page> page, std::weak_ptr<ReadAhead::Shared> shared)
        : owner_(owner), page_(std::move(page)), shared_(std::move(shared)) {}

    void run(Session& session) override {
        auto events = owner_.fetch(session, page_->from, page_->limit);
        ReadAhead::Handler waiter;
        if (auto shared = shared_.lock()) {
            std::lock_guard lock(shared->mutex);
            page_->done = true;
            waiter = std::move(page_->waiter);
            const bool full = static_cast<std::int64_t>(events.size()) == page_->limit;
            if (waiter || !full) {
                // Taken (the waiter gets it), or short and so not worth keeping.
                std::erase(shared->pages, page_);
            }
            if (!waiter && full) page_->events = std::move(events);
        }
        if (waiter) waiter.complete(nullptr, std::move(events));
    }

    void fail(std::exception_ptr error) noexcept override {
        ReadAhead::Handler waiter;
        if (auto shared = shared_.lock()) {
            std::lock_guard lock(shared->mutex);
            std::erase(shared->pages, page_);
            waiter = std::move(page_->waiter);
        }
        // Nobody asked: the reader's own query will meet the problem, if it lasts.
        try {
            if (waiter) waiter.complete(std::move(error));
        } catch (...) {
            // Out of memory while posting: the handler's destructor aborts it.
        }
    }

    std::string describe() const override { return "read_all from position " + std::to_string(page_->from); }

private:
    ReadAhead& owner_;  // the store's: outlives every job (the pool is shut down first)
    std::shared_ptr<ReadAhead::Page> page_;
    std::weak_ptr<ReadAhead::Shared> shared_;
};

}  // namespace

ReadAhead::ReadAhead(Pool& pool, std::shared_ptr<Counters> counters) : pool_(pool), shared_(std::make_shared<Shared>()) {
    shared_->counters = std::move(counters);
}

bool ReadAhead::serve(std::int64_t from, std::int64_t limit, Handler& handler) {
    std::shared_ptr<Page> page;
    {
        std::lock_guard lock(shared_->mutex);
        auto it = std::find_if(shared_->pages.begin(), shared_->pages.end(), [&](const auto& p) {
            return p->from == from && p->limit == limit && !p->waiter;
        });
        if (it == shared_->pages.end()) return false;
        page = *it;
        Counters::add(shared_->counters->read_ahead_pages);
        if (!page->done) {
            // Still being fetched: the handler waits for it. Cancelled, it
            // stops waiting (the page is dropped when it arrives).
            page->waiter = std::move(handler);
            page->waiter.on_cancel([weak_shared = std::weak_ptr<Shared>(shared_),
                                    weak_page = std::weak_ptr<Page>(page)](boost::asio::cancellation_type) {
                auto shared = weak_shared.lock();
                auto p = weak_page.lock();
                if (!shared || !p) return;
                Handler waiter;
                {
                    std::lock_guard guard(shared->mutex);
                    waiter = std::move(p->waiter);
                }
                if (waiter) {
                    Counters::add(shared->counters->aborted);
                    waiter.complete(aborted_error("read_all from position " + std::to_string(p->from),
                                                  "cancelled before it completed"));
                }
            });
            return true;
        }
        shared_->pages.erase(it);
    }
    handler.complete(nullptr, std::move(page->events));
    return true;
}

std::vector<RecordedEvent> ReadAhead::fetch(Session& session, std::int64_t from, std::int64_t limit) {
    pqxx::result rows;
    {
        pqxx::nontransaction tx(session.connection(), "boong-read-all");
        rows = tx.exec_prepared(kReadAllStatement, from, limit);
    }
    if (!rows.empty() && static_cast<std::int64_t>(rows.size()) == limit) {
        ahead(to_int64(rows[static_cast<pqxx::result::size_type>(rows.size() - 1)][1]) + 1, limit);
    }
    std::vector<RecordedEvent> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(to_event(row, 1, std::string(row[0].c_str(), row[0].size())));
    return out;
}

void ReadAhead::ahead(std::int64_t from, std::int64_t limit) {
    auto page = std::make_shared<Page>();
    page->from = from;
    page->limit = limit;
    page->made = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(shared_->mutex);
        shared_->drop_old(page->made);
        if (shared_->pages.size() >= kPagesAhead) return;
        for (const auto& p : shared_->pages) {
            if (p->from == from && p->limit == limit) return;  // already on its way
        }
        shared_->pages.push_back(page);
    }
    pool_.submit(std::make_shared<AheadJob>(*this, std::move(page), shared_));
}

}  // namespace boong::pg
