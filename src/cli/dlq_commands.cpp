// boong dlq list|show|redrive|drop: the dead letters of a topic, on any
// broker the config names. Redrive and drop are operator actions: each is
// first appended to the event store's "boong-audit" stream (who, why, which
// ids, when), then carried out; --dry-run shows what would be done and
// records nothing.
#include "commands.hpp"
#include "exit_status.hpp"
#include "output.hpp"
#include "time_text.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <memory>
#include <set>

namespace boong::cli {

namespace asio = boost::asio;

// The stream operator actions are recorded in.
inline constexpr const char* kAuditStream = "boong-audit";

namespace {

template <class T>
T run_op(asio::io_context& ioc, asio::awaitable<T> op) {
    try {
        return run_to_completion(ioc, std::move(op));
    } catch (...) {
        throw command_error(std::current_exception());
    }
}

// Every dead letter of `topic`, oldest first.
std::vector<DeadLetter> all_dead_letters(asio::io_context& ioc, AnyBroker& broker, const std::string& topic) {
    std::vector<DeadLetter> all;
    constexpr std::size_t kPage = 1000;
    std::string after;
    for (;;) {
        auto page = run_op(ioc, broker.async_dead_letters(topic, after, kPage, asio::use_awaitable));
        const bool last = page.size() < kPage;
        if (!page.empty()) after = page.back().message_id;
        std::move(page.begin(), page.end(), std::back_inserter(all));
        if (last) break;
    }
    return all;
}

json dead_letter_json(const DeadLetter& d, bool with_event) {
    json j = {{"message_id", d.message_id},
              {"source_topic", d.source_topic},
              {"source_message_id", d.source_message_id},
              {"group", d.group},
              {"reason", d.reason},
              {"delivery_count", d.delivery_count},
              {"at", format_timestamp(d.at)},
              {"event_id", d.event ? json(d.event->event_id) : json(nullptr)},
              {"event_type", d.event ? json(d.event->type) : json(nullptr)}};
    if (with_event) {
        j["event"] = d.event ? json(*d.event) : json(nullptr);
        j["raw"] = d.event ? json(nullptr) : json(d.raw);
    }
    return j;
}

void print_dead_letters(const std::vector<DeadLetter>& letters) {
    const auto now = Clock::now();
    Table t({"ID", "GROUP", "DELIVERIES", "AGE", "EVENT", "REASON"});
    for (const auto& d : letters) {
        t.add({d.message_id, d.group, std::to_string(d.delivery_count),
               format_duration(std::chrono::duration_cast<milliseconds>(now - d.at)),
               d.event ? d.event->type : std::string("(undecodable)"), shorten(d.reason, 80)});
    }
    t.print(std::cout, stdout_wants_colour());
}

// ---- list / show ---------------------------------------------------------------

struct ReadOptions {
    std::string topic;
    std::vector<std::string> ids;
};

void list(const GlobalOptions& global, const ReadOptions& o) {
    asio::io_context ioc;
    AnyBroker broker = open_broker(ioc, effective_config(global));
    const auto letters = all_dead_letters(ioc, broker, o.topic);
    if (global.json) {
        json out = json::array();
        for (const auto& d : letters) out.push_back(dead_letter_json(d, false));
        print_json(std::cout, json{{"topic", o.topic}, {"dead_letters", out}});
        return;
    }
    if (letters.empty()) {
        std::cout << "No dead letters in " << o.topic << ".\n";
        return;
    }
    print_dead_letters(letters);
}

void show(const GlobalOptions& global, const ReadOptions& o) {
    asio::io_context ioc;
    AnyBroker broker = open_broker(ioc, effective_config(global));
    const auto letters = all_dead_letters(ioc, broker, o.topic);
    std::vector<const DeadLetter*> shown;
    for (const auto& id : o.ids) {
        auto it = std::find_if(letters.begin(), letters.end(), [&](const DeadLetter& d) { return d.message_id == id; });
        if (it == letters.end()) {
            throw CommandError(ExitStatus::not_found, "no dead letter " + id + " in " + dead_letter_topic(o.topic));
        }
        shown.push_back(&*it);
    }
    if (global.json) {
        json out = json::array();
        for (const auto* d : shown) out.push_back(dead_letter_json(*d, true));
        print_json(std::cout, json{{"topic", o.topic}, {"dead_letters", out}});
        return;
    }
    const bool colour = stdout_wants_colour();
    for (const auto* d : shown) {
        auto field = [&](const char* name, const std::string& value) {
            std::cout << paint(name, Colour::bold, colour) << std::string(14 - std::string_view(name).size(), ' ')
                      << value << '\n';
        };
        field("Dead letter", d->message_id + " (" + dead_letter_topic(o.topic) + ")");
        field("From", d->source_topic + " " + d->source_message_id);
        field("Group", d->group);
        field("Deliveries", std::to_string(d->delivery_count));
        field("At", format_time(d->at));
        field("Reason", paint(d->reason, Colour::red, colour));
        if (d->event) {
            field("Event", d->event->type + " " + d->event->event_id);
            std::cout << json(*d->event).dump(2) << '\n';
        } else {
            field("Raw", d->raw);
        }
        std::cout << '\n';
    }
}

// ---- redrive / drop --------------------------------------------------------------

struct SettleOptions {
    std::string topic;
    std::vector<std::string> ids;
    bool all = false;
    std::string before;
    bool dry_run = false;
    std::string reason;
    std::string as;
};

void settle(const GlobalOptions& global, const SettleOptions& o, bool redrive) {
    const char* verb = redrive ? "redrive" : "drop";
    if (!redrive && o.reason.empty()) {
        throw CommandError(ExitStatus::usage, "dlq drop: --reason is required (dropped messages are gone for good; "
                                              "the reason is kept in the audit record)");
    }
    std::optional<Clock::time_point> before;
    if (!o.before.empty()) before = parse_time(o.before, "--before", Clock::now());
    const Config config = effective_config(global);
    asio::io_context ioc;
    AnyBroker broker = open_broker(ioc, config);
    // The selection is made into ids here, so that the audit record says
    // exactly which messages the operator acted on.
    const auto letters = all_dead_letters(ioc, broker, o.topic);
    std::vector<const DeadLetter*> chosen;
    if (!o.ids.empty()) {
        for (const auto& id : std::set<std::string>(o.ids.begin(), o.ids.end())) {
            auto it = std::find_if(letters.begin(), letters.end(), [&](const DeadLetter& d) { return d.message_id == id; });
            if (it == letters.end()) {
                throw CommandError(ExitStatus::not_found, "no dead letter " + id + " in " + dead_letter_topic(o.topic) +
                                                              ": nothing done");
            }
            chosen.push_back(&*it);
        }
    } else {
        for (const auto& d : letters) {
            if (o.all || (before && d.at < *before)) chosen.push_back(&d);
        }
    }
    std::vector<std::string> ids;
    for (const auto* d : chosen) ids.push_back(d->message_id);
    const std::string by = operator_name(o.as);
    const auto now = Clock::now();

    json audit = nullptr;
    std::size_t done = 0;
    if (!o.dry_run && !ids.empty()) {
        StoreConnection store(ioc, config);
        EventData record;
        record.event_id = IdGenerator().next(now);
        record.type = redrive ? "DeadLettersRedriven" : "DeadLettersDropped";
        record.payload = {{"by", by},
                          {"reason", o.reason.empty() ? json(nullptr) : json(o.reason)},
                          {"topic", o.topic},
                          {"ids", ids},
                          {"at", format_timestamp(now)}};
        record.metadata.timestamp = now;
        std::vector<EventData> events{record};
        // Recorded before it is done: an action never happens unrecorded
        // (a failure after this leaves a record of an attempt, which says so).
        auto append = store.store().async_append(kAuditStream, ExpectedVersion::any(), std::move(events),
                                                 asio::use_awaitable);
        AppendResult appended;
        try {
            appended = store.run(std::move(append));
        } catch (...) {
            throw command_error(std::current_exception());
        }
        audit = {{"stream", kAuditStream},
                 {"version", appended.next_expected_version},
                 {"position", appended.first_position},
                 {"event_id", record.event_id},
                 {"type", record.type}};
        auto act = redrive ? broker.async_redrive(o.topic, DeadLetterSelection::of(ids), asio::use_awaitable)
                           : broker.async_drop(o.topic, DeadLetterSelection::of(ids), asio::use_awaitable);
        done = run_op(ioc, std::move(act));
    }
    if (global.json) {
        print_json(std::cout, json{{"operation", verb},
                                   {"topic", o.topic},
                                   {"dry_run", o.dry_run},
                                   {"by", by},
                                   {"reason", o.reason.empty() ? json(nullptr) : json(o.reason)},
                                   {"ids", ids},
                                   {"count", o.dry_run ? json(nullptr) : json(done)},
                                   {"audit", audit}});
        return;
    }
    if (ids.empty()) {
        std::cout << "No dead letters of " << o.topic << " match: nothing to " << verb << ".\n";
        return;
    }
    if (o.dry_run) {
        std::cout << "Would " << verb << " " << ids.size() << " dead letter" << (ids.size() == 1 ? "" : "s") << " of "
                  << o.topic << " (dry run: nothing recorded, nothing done):\n";
        std::vector<DeadLetter> listed;
        for (const auto* d : chosen) listed.push_back(*d);
        print_dead_letters(listed);
        return;
    }
    std::cout << (redrive ? "Redrove " : "Dropped ") << done << " of " << ids.size() << " dead letter"
              << (ids.size() == 1 ? "" : "s") << " of " << o.topic << " as " << by << "; recorded in "
              << kAuditStream << " at version " << audit["version"].get<std::int64_t>() << ".\n";
    if (done < ids.size()) {
        std::cout << "The others were no longer dead letters (another operator, or a consumer, settled them).\n";
    }
}

void add_selection(CLI::App* cmd, SettleOptions& o) {
    auto* id = cmd->add_option("--id", o.ids, "A dead letter's id (repeatable)");
    auto* all = cmd->add_flag("--all", o.all, "Every dead letter of the topic");
    auto* before = cmd->add_option("--before", o.before, "Those dead-lettered before TIME (RFC 3339, or -1h)");
    id->excludes(all, before);
    all->excludes(before);
    auto* group = cmd->add_option_group("selection");
    group->add_option(id);
    group->add_option(all);
    group->add_option(before);
    group->require_option(1);
    cmd->add_flag("--dry-run", o.dry_run, "List what would be done; record and change nothing");
    cmd->add_option("--as", o.as, "Who is acting, for the audit record (default: user@host)");
}

}  // namespace

void add_dlq_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action) {
    auto* dlq = app.add_subcommand("dlq", "Dead letters: list, show, send back (redrive), drop");
    dlq->require_subcommand(1);

    auto lo = std::make_shared<ReadOptions>();
    auto* list_cmd = dlq->add_subcommand("list", "The dead letters of a topic, oldest first");
    list_cmd->add_option("--topic", lo->topic, "The topic (its dead letters are in <topic>.dlq)")->required();
    list_cmd->callback([&action, &global, lo] { action = [&global, lo] { list(global, *lo); }; });

    auto so = std::make_shared<ReadOptions>();
    auto* show_cmd = dlq->add_subcommand("show", "Dead letters in full: where from, why, the event");
    show_cmd->add_option("--topic", so->topic, "The topic")->required();
    show_cmd->add_option("--id", so->ids, "A dead letter's id (repeatable)")->required();
    show_cmd->callback([&action, &global, so] { action = [&global, so] { show(global, *so); }; });

    auto ro = std::make_shared<SettleOptions>();
    auto* redrive_cmd = dlq->add_subcommand("redrive", "Publish dead letters to their topic again, then remove them");
    redrive_cmd->add_option("--topic", ro->topic, "The topic")->required();
    add_selection(redrive_cmd, *ro);
    redrive_cmd->add_option("--reason", ro->reason, "Why, for the audit record");
    redrive_cmd->callback([&action, &global, ro] { action = [&global, ro] { settle(global, *ro, true); }; });

    auto dro = std::make_shared<SettleOptions>();
    auto* drop_cmd = dlq->add_subcommand("drop", "Remove dead letters for good (--reason required)");
    drop_cmd->add_option("--topic", dro->topic, "The topic")->required();
    add_selection(drop_cmd, *dro);
    drop_cmd->add_option("--reason", dro->reason, "Why, for the audit record (required)");
    drop_cmd->callback([&action, &global, dro] { action = [&global, dro] { settle(global, *dro, false); }; });
}

}  // namespace boong::cli
