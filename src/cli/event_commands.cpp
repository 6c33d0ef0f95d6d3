// boong events show|tail|archive: a stream's events, the store's global
// order (with --follow, as it grows), and moving old events to the archive.
#include "commands.hpp"
#include "exit_status.hpp"
#include "output.hpp"
#include "time_text.hpp"

#include <boong/postgres/transaction.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <csignal>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>

namespace boong::cli {

namespace asio = boost::asio;

namespace {

template <class T>
T run_store_op(StoreConnection& c, asio::awaitable<T> op) {
    try {
        return c.run(std::move(op));
    } catch (...) {
        throw command_error(std::current_exception());
    }
}

std::string payload_text(const RecordedEvent& e) { return shorten(e.event.payload.dump(), 80); }

void print_events_table(const std::vector<RecordedEvent>& events, bool with_stream) {
    Table t(with_stream ? std::vector<std::string>{"POSITION", "STREAM", "VERSION", "TIME", "TYPE", "PAYLOAD"}
                        : std::vector<std::string>{"VERSION", "POSITION", "TIME", "TYPE", "PAYLOAD"});
    for (const auto& e : events) {
        const std::string time = format_time(e.event.metadata.timestamp);
        if (with_stream) {
            t.add({std::to_string(e.position), e.stream_id, std::to_string(e.version), time,
                   Cell(e.event.type, Colour::blue), payload_text(e)});
        } else {
            t.add({std::to_string(e.version), std::to_string(e.position), time, Cell(e.event.type, Colour::blue),
                   payload_text(e)});
        }
    }
    t.print(std::cout, stdout_wants_colour());
}

// ---- events show -------------------------------------------------------------

struct ShowOptions {
    std::string stream;
    std::int64_t from_version = 1;
    std::size_t limit = 1000;
};

void show(const GlobalOptions& global, const ShowOptions& o) {
    asio::io_context ioc;
    StoreConnection c(ioc, effective_config(global));
    std::vector<RecordedEvent> events;
    constexpr std::size_t kPage = 1000;
    for (std::int64_t from = o.from_version; events.size() < o.limit;) {
        const std::size_t want = std::min(kPage, o.limit - events.size());
        auto page = run_store_op(c, c.store().async_read_stream(o.stream, from, want, asio::use_awaitable));
        const bool last = page.size() < want;
        if (!page.empty()) from = page.back().version + 1;
        std::move(page.begin(), page.end(), std::back_inserter(events));
        if (last) break;
    }
    if (events.empty()) {
        throw CommandError(ExitStatus::not_found, "no events in stream '" + o.stream + "'" +
                                                      (o.from_version > 1 ? " from version " + std::to_string(o.from_version) : ""));
    }
    if (global.json) {
        print_json(std::cout, json{{"stream", o.stream}, {"events", events}});
        return;
    }
    print_events_table(events, false);
}

// ---- events tail -------------------------------------------------------------

struct TailOptions {
    std::optional<std::int64_t> from;
    std::string type;
    std::size_t limit = 20;
    bool follow = false;
    std::string interval = "1s";
};

// The position of the newest event (0: none): where "the last N" starts.
std::int64_t head_position(StoreConnection& c) {
    const std::string table = c.store().tables().events;
    auto query = [table](pqxx::transaction_base& tx) {
        return tx.exec1("SELECT coalesce(max(position), 0) FROM " + table)[0].as<std::int64_t>();
    };
    auto op = async_transact(c.store(), std::move(query), Durability::relaxed, asio::use_awaitable);
    return run_store_op(c, std::move(op));
}

// Reads from `next` on, printing what matches, until stopped (Ctrl-C, or
// SIGTERM): polls every `interval` once it has caught up.
asio::awaitable<void> follow(PostgresEventStore& store, std::int64_t next, const TailOptions& o, bool as_json,
                             milliseconds interval, const bool& stopping, asio::steady_timer& pause) {
    const bool colour = stdout_wants_colour();
    while (!stopping) {
        auto page = co_await store.async_read_all(next, 1000, asio::use_awaitable);
        for (const auto& e : page) {
            next = e.position + 1;
            if (!o.type.empty() && e.event.type != o.type) continue;
            if (as_json) {
                std::cout << json(e).dump() << '\n';  // JSON Lines: one event a line, as it comes
            } else {
                std::cout << paint(format_time(e.event.metadata.timestamp), Colour::dim, colour) << "  #" << e.position
                          << "  " << e.stream_id << "@" << e.version << "  " << paint(e.event.type, Colour::blue, colour)
                          << "  " << payload_text(e) << '\n';
            }
        }
        std::cout.flush();
        if (page.size() < 1000 && !stopping) {
            pause.expires_after(interval);
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }
}

void tail(const GlobalOptions& global, const TailOptions& o) {
    const milliseconds interval = parse_duration(o.interval, "--interval");
    if (interval.count() <= 0) throw CommandError(ExitStatus::usage, "--interval: must be more than 0");
    asio::io_context ioc;
    StoreConnection c(ioc, effective_config(global));
    std::int64_t from = 1;
    if (o.from) {
        from = *o.from;
    } else {
        from = std::max<std::int64_t>(1, head_position(c) - static_cast<std::int64_t>(o.limit) + 1);
    }
    if (o.follow) {
        bool stopping = false;
        asio::steady_timer pause(ioc);
        asio::signal_set signals(ioc, SIGINT, SIGTERM);
        // Ctrl-C ends the follow cleanly (exit 0): a read in flight finishes first.
        signals.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            stopping = true;
            pause.cancel();
        });
        auto loop = follow(c.store(), from, o, global.json, interval, stopping, pause);
        try {
            c.run(std::move(loop));
        } catch (...) {
            throw command_error(std::current_exception());
        }
        signals.cancel();
        return;
    }
    auto page = run_store_op(c, c.store().async_read_all(from, o.limit, asio::use_awaitable));
    const std::int64_t next = page.empty() ? from : page.back().position + 1;
    std::vector<RecordedEvent> shown;
    for (auto& e : page) {
        if (o.type.empty() || e.event.type == o.type) shown.push_back(std::move(e));
    }
    if (global.json) {
        print_json(std::cout, json{{"events", shown}, {"next_position", next}});
        return;
    }
    if (shown.empty()) {
        std::cout << "No events from position " << from << ".\n";
        return;
    }
    print_events_table(shown, true);
}

// ---- events archive ----------------------------------------------------------

struct ArchiveOptions {
    std::optional<std::int64_t> below_position;
    std::string older_than;
    std::string min_age = "1h";
    std::int64_t batch_size = 10000;
    bool dry_run = false;
};

void archive(const GlobalOptions& global, const ArchiveOptions& o) {
    ArchivePolicy policy;
    policy.below_position = o.below_position;
    if (!o.older_than.empty()) policy.older_than = parse_duration(o.older_than, "--older-than");
    policy.min_age = parse_duration(o.min_age, "--min-age");
    policy.batch_size = o.batch_size;
    policy.dry_run = o.dry_run;
    if (!policy.below_position && !policy.older_than) {
        throw CommandError(ExitStatus::usage,
                           "events archive: say what to archive: --below-position, --older-than, or both");
    }
    asio::io_context ioc;
    StoreConnection c(ioc, effective_config(global));
    const ArchiveResult r = run_store_op(c, c.store().async_archive(policy, asio::use_awaitable));
    if (global.json) {
        print_json(std::cout, json{{"dry_run", o.dry_run},
                                   {"archived", r.archived},
                                   {"kept", r.kept},
                                   {"transactions", r.transactions},
                                   {"reached_position", r.reached_position},
                                   {"held_by_relay", r.held_by_relay ? json(*r.held_by_relay) : json(nullptr)}});
        return;
    }
    std::cout << (o.dry_run ? "Would archive " : "Archived ") << r.archived << " event(s) up to position "
              << r.reached_position << " in " << r.transactions << " transaction(s); " << r.kept
              << " matched but stay as their stream's newest.\n";
    if (r.held_by_relay) {
        std::cout << "Stopped at position " << *r.held_by_relay
                  << ": a relay has not published the events after it (see `boong outbox status`).\n";
    }
}

}  // namespace

void add_event_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action) {
    auto* events = app.add_subcommand("events", "The event store: a stream, or every event in order");
    events->require_subcommand(1);

    auto so = std::make_shared<ShowOptions>();
    auto* show_cmd = events->add_subcommand("show", "The events of one stream (e.g. saga-<id>, order-42)");
    show_cmd->add_option("stream", so->stream, "The stream id")->required();
    show_cmd->add_option("--from-version", so->from_version, "From this version")->capture_default_str()->check(CLI::PositiveNumber);
    show_cmd->add_option("--limit", so->limit, "At most N events")->capture_default_str()->check(CLI::Range(1, 1000000));
    show_cmd->callback([&action, &global, so] { action = [&global, so] { show(global, *so); }; });

    auto to = std::make_shared<TailOptions>();
    auto* tail_cmd = events->add_subcommand("tail", "Every stream's events in global order: the last N, or from a position");
    tail_cmd->add_option("--from", to->from, "From this global position (default: the last --limit events)")->check(CLI::PositiveNumber);
    tail_cmd->add_option("--type", to->type, "Only events of this type");
    tail_cmd->add_option("--limit", to->limit, "At most N events (without --follow)")->capture_default_str()->check(CLI::Range(1, 10000));
    tail_cmd->add_flag("-f,--follow", to->follow, "Keep printing new events until Ctrl-C (--json: one event a line)");
    tail_cmd->add_option("--interval", to->interval, "With --follow: how often to look for new events")->capture_default_str();
    tail_cmd->callback([&action, &global, to] { action = [&global, to] { tail(global, *to); }; });

    auto ao = std::make_shared<ArchiveOptions>();
    auto* archive_cmd = events->add_subcommand(
        "archive", "Move old events to the archive table; every read still returns them (docs/postgres.md)");
    archive_cmd->add_option("--below-position", ao->below_position, "Events at positions below this")
        ->check(CLI::PositiveNumber);
    archive_cmd->add_option("--older-than", ao->older_than, "Events stored longer ago than this (e.g. 90d)");
    archive_cmd->add_option("--min-age", ao->min_age, "Never events younger than this (retried appends are recognised "
                                                      "among younger ones)")
        ->capture_default_str();
    archive_cmd->add_option("--batch-size", ao->batch_size, "Events examined per transaction")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    archive_cmd->add_flag("--dry-run", ao->dry_run, "Count what would move; move nothing");
    archive_cmd->callback([&action, &global, ao] { action = [&global, ao] { archive(global, *ao); }; });
}

}  // namespace boong::cli
