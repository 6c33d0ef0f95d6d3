// boong sagas list|stats|stuck|show: what the saga index and a saga's
// events say; retry and cancel: operator requests, recorded in each saga's
// stream and carried out by the orchestrators (never table edits).
#include "commands.hpp"
#include "exit_status.hpp"
#include "output.hpp"
#include "saga_timeline.hpp"
#include "time_text.hpp"

#include <boong/postgres/sagas.hpp>
#include <boong/postgres/transaction.hpp>
#include <boong/saga_cancel.hpp>
#include <boong/saga_retry.hpp>

#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <string_view>

namespace boong::cli {

namespace asio = boost::asio;

namespace {

json text_or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

// "3m" since `t`, for AGE columns.
std::string age(Clock::time_point t, Clock::time_point now) {
    return format_duration(std::chrono::duration_cast<milliseconds>(now - t));
}

// The reason a listed saga needs attention, in a few words.
std::string why(const SagaRecord& r, Clock::time_point now) {
    switch (r.phase) {
        case SagaPhase::failed: return "compensation of " + r.failed_compensation + " gave up: " + r.compensation_error;
        case SagaPhase::blocked: return r.blocked_reason;
        default: break;
    }
    if (r.owner.empty()) return "never owned, unchanged for " + age(r.updated_at, now);
    if (r.lease_until && *r.lease_until < now) return "lease of " + r.owner + " expired " + age(*r.lease_until, now) + " ago";
    return "";
}

std::string failure_text(const SagaRecord& r) {
    if (r.failed_step.empty()) return "";
    return r.failed_step + " (" + std::string(to_string(r.failure_kind)) + "): " + r.error;
}

void print_saga_table(const std::vector<SagaRecord>& sagas, bool with_why) {
    const bool colour = stdout_wants_colour();
    const auto now = Clock::now();
    Table t(with_why ? std::vector<std::string>{"SAGA", "TYPE", "VER", "PHASE", "UPDATED", "OWNER", "WHY"}
                     : std::vector<std::string>{"SAGA", "TYPE", "VER", "PHASE", "AGE", "UPDATED", "OWNER", "FAILURE"});
    for (const auto& r : sagas) {
        const std::string phase(to_string(r.phase));
        if (with_why) {
            t.add({r.saga_id, r.saga_type, std::to_string(r.definition_version), Cell(phase, phase_colour(phase)),
                   age(r.updated_at, now), r.owner, shorten(why(r, now), 80)});
        } else {
            t.add({r.saga_id, r.saga_type, std::to_string(r.definition_version), Cell(phase, phase_colour(phase)),
                   age(r.started_at, now), age(r.updated_at, now), r.owner, shorten(failure_text(r), 60)});
        }
    }
    if (t.empty()) {
        std::cout << "No sagas.\n";
        return;
    }
    t.print(std::cout, colour);
}

// The store and its saga index, open for one command.
struct SagaIndexConnection {
    asio::io_context ioc;
    StoreConnection store;
    PostgresSagaIndex index;
    explicit SagaIndexConnection(const GlobalOptions& global)
        : store(ioc, effective_config(global)), index(store.store()) {}
    template <class T>
    T run(asio::awaitable<T> op) {
        try {
            return store.run(std::move(op));
        } catch (...) {
            throw command_error(std::current_exception());
        }
    }
};

// ---- sagas list ------------------------------------------------------------

struct ListOptions {
    std::string phase;
    std::string type;
    std::string since;
    std::string after;
    std::size_t limit = 50;
};

void list(const GlobalOptions& global, const ListOptions& o) {
    SagaQuery q;
    if (!o.phase.empty()) {
        q.phase = saga_phase_from_string(o.phase);
        if (!q.phase) {
            throw CommandError(ExitStatus::usage, "--phase: expected running, compensating, completed, compensated, "
                                                  "failed or blocked, got '" + o.phase + "'");
        }
    }
    std::optional<Clock::time_point> since;
    if (!o.since.empty()) since = parse_time(o.since, "--since", Clock::now());
    q.saga_type = o.type;
    q.after_id = o.after;
    SagaIndexConnection c(global);
    std::vector<SagaRecord> out;
    // --since filters what the index returns by id: page until enough match.
    q.limit = since ? 1000 : o.limit;
    for (;;) {
        auto page = c.run(c.index.async_list(q, asio::use_awaitable));
        for (auto& r : page) {
            if (out.size() < o.limit && (!since || r.started_at >= *since)) out.push_back(std::move(r));
        }
        if (out.size() >= o.limit || page.size() < q.limit) break;
        q.after_id = page.back().saga_id;
    }
    if (global.json) {
        json sagas = json::array();
        for (const auto& r : out) sagas.push_back(saga_record_json(r));
        print_json(std::cout, json{{"sagas", sagas}});
        return;
    }
    print_saga_table(out, false);
}

// ---- sagas stats -----------------------------------------------------------

struct TypePhaseCount {
    std::string saga_type;
    std::string phase;
    std::int64_t count = 0;
};

void stats(const GlobalOptions& global) {
    SagaIndexConnection c(global);
    auto totals = c.run(c.index.async_count_by_phase(asio::use_awaitable));
    auto definitions = c.run(c.index.async_count_definitions("", asio::use_awaitable));
    // Counts by type and phase, terminal phases included: the index offers
    // them per definition for sagas in flight only, so ask its table.
    const std::string table = c.store.store().tables().sagas;
    auto by_type_query = [table](pqxx::transaction_base& tx) {
        std::vector<TypePhaseCount> rows;
        for (const auto& row : tx.exec("SELECT saga_type, phase, count(*) FROM " + table +
                                       " GROUP BY saga_type, phase ORDER BY saga_type, phase")) {
            rows.push_back({row[0].c_str(), row[1].c_str(), row[2].as<std::int64_t>()});
        }
        return rows;
    };
    auto by_type_op = async_transact(c.store.store(), std::move(by_type_query), Durability::relaxed, asio::use_awaitable);
    auto by_type = c.run(std::move(by_type_op));

    if (global.json) {
        json phases = json::object();
        for (const auto& [phase, n] : totals) phases[std::string(to_string(phase))] = n;
        json types = json::array();
        for (const auto& r : by_type) types.push_back({{"saga_type", r.saga_type}, {"phase", r.phase}, {"count", r.count}});
        json defs = json::array();
        for (const auto& d : definitions) {
            defs.push_back({{"saga_type", d.saga_type},
                            {"definition_version", d.definition_version},
                            {"fingerprint", text_or_null(d.fingerprint)},
                            {"phase", to_string(d.phase)},
                            {"count", d.count}});
        }
        print_json(std::cout, json{{"phases", phases}, {"types", types}, {"in_flight_definitions", defs}});
        return;
    }
    const bool colour = stdout_wants_colour();
    static constexpr SagaPhase kPhases[] = {SagaPhase::running,     SagaPhase::compensating, SagaPhase::blocked,
                                            SagaPhase::completed,   SagaPhase::compensated,  SagaPhase::failed};
    std::vector<std::string> headers{"TYPE"};
    for (auto p : kPhases) {
        std::string h(to_string(p));
        for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        headers.push_back(h);
    }
    headers.push_back("TOTAL");
    std::map<std::string, std::map<std::string, std::int64_t>> pivot;
    for (const auto& r : by_type) pivot[r.saga_type][r.phase] += r.count;
    Table t(headers);
    auto row_of = [&](const std::string& name, const std::map<std::string, std::int64_t>& counts, bool bold) {
        std::vector<Cell> row{Cell(name, bold ? Colour::bold : Colour::none)};
        std::int64_t total = 0;
        for (auto p : kPhases) {
            const std::string phase(to_string(p));
            const auto it = counts.find(phase);
            const std::int64_t n = it == counts.end() ? 0 : it->second;
            total += n;
            row.emplace_back(std::to_string(n), n > 0 ? phase_colour(phase) : Colour::dim);
        }
        row.emplace_back(std::to_string(total));
        t.add(std::move(row));
    };
    std::map<std::string, std::int64_t> all;
    for (const auto& [type, counts] : pivot) {
        row_of(type, counts, false);
        for (const auto& [phase, n] : counts) all[phase] += n;
    }
    if (pivot.empty()) {
        std::cout << "No sagas.\n";
        return;
    }
    if (pivot.size() > 1) row_of("(all)", all, true);
    t.print(std::cout, colour);
    if (!definitions.empty()) {
        std::cout << "\nIn flight, by definition:\n";
        Table d({"TYPE", "VERSION", "FINGERPRINT", "PHASE", "COUNT"});
        for (const auto& x : definitions) {
            const std::string phase(to_string(x.phase));
            d.add({x.saga_type, std::to_string(x.definition_version), x.fingerprint, Cell(phase, phase_colour(phase)),
                   std::to_string(x.count)});
        }
        d.print(std::cout, colour);
    }
}

// ---- sagas stuck -----------------------------------------------------------

void stuck(const GlobalOptions& global, const std::string& idle_text, std::size_t limit) {
    const milliseconds idle = parse_duration(idle_text, "--idle");
    SagaIndexConnection c(global);
    auto sagas = c.run(c.index.async_stuck(idle, limit, asio::use_awaitable));
    if (global.json) {
        const auto now = Clock::now();
        json out = json::array();
        for (const auto& r : sagas) {
            json j = saga_record_json(r);
            j["why"] = why(r, now);
            out.push_back(std::move(j));
        }
        print_json(std::cout, json{{"idle_ms", idle.count()}, {"sagas", out}});
        return;
    }
    print_saga_table(sagas, true);
}

// ---- sagas show ------------------------------------------------------------

std::vector<RecordedEvent> read_whole_stream(SagaIndexConnection& c, const std::string& stream) {
    std::vector<RecordedEvent> all;
    constexpr std::size_t kPage = 1000;
    for (std::int64_t from = 1;;) {
        auto page = c.run(c.store.store().async_read_stream(stream, from, kPage, asio::use_awaitable));
        const bool last = page.size() < kPage;
        if (!page.empty()) from = page.back().version + 1;
        std::move(page.begin(), page.end(), std::back_inserter(all));
        if (last) break;
    }
    return all;
}

void show(const GlobalOptions& global, const std::string& id) {
    SagaIndexConnection c(global);
    auto record = c.run(c.index.async_find(id, asio::use_awaitable));
    auto events = read_whole_stream(c, saga_stream(id));
    if (events.empty()) throw CommandError(ExitStatus::not_found, "no saga " + id + " (its stream " + saga_stream(id) + " is empty)");
    SagaTimeline timeline;
    try {
        timeline = build_timeline(events);
    } catch (...) {
        throw command_error(std::current_exception());
    }
    const SagaState& s = timeline.state;
    const std::string owner = record ? record->owner : "";
    const std::optional<Clock::time_point> lease = record ? record->lease_until : std::nullopt;
    const bool failed = !s.failed_step.empty();
    if (global.json) {
        json failure = nullptr;
        if (failed || !s.failed_compensation.empty()) {
            failure = {{"step", text_or_null(s.failed_step)},
                       {"kind", failed ? json(to_string(s.failure_kind)) : json(nullptr)},
                       {"error", text_or_null(s.error)},
                       {"compensation", text_or_null(s.failed_compensation)},
                       {"compensation_error", text_or_null(s.compensation_error)}};
        }
        json entries = json::array();
        for (const auto& e : timeline.entries) entries.push_back(to_json(e));
        json saga = {{"saga_id", s.saga_id},
                     {"saga_type", s.saga_type},
                     {"definition_version", s.definition.version},
                     {"fingerprint", text_or_null(s.definition.fingerprint)},
                     {"phase", to_string(s.phase)},
                     {"version", s.version},
                     {"correlation_id", text_or_null(s.correlation_id)},
                     {"started_at", format_timestamp(s.started_at)},
                     {"updated_at", format_timestamp(s.updated_at)},
                     {"deadline", json_time(s.deadline)},
                     {"owner", text_or_null(owner)},
                     {"lease_until", json_time(lease)},
                     {"blocked_reason", text_or_null(s.blocked_reason)},
                     {"completed_steps", s.completed},
                     {"compensated_steps", s.compensated},
                     {"data", s.data}};
        print_json(std::cout, json{{"saga", saga}, {"failure", failure}, {"timeline", entries}});
        return;
    }
    const bool colour = stdout_wants_colour();
    const auto now = Clock::now();
    const std::string phase(to_string(s.phase));
    auto field = [&](const char* name, const std::string& value) {
        std::cout << paint(name, Colour::bold, colour) << std::string(12 - std::string_view(name).size(), ' ') << value
                  << '\n';
    };
    field("Saga", s.saga_id);
    field("Type", s.saga_type + " (definition " + std::to_string(s.definition.version) +
                      (s.definition.fingerprint.empty() ? "" : ", fingerprint " + s.definition.fingerprint) + ")");
    field("Phase", paint(phase, phase_colour(phase), colour) +
                       (s.blocked_reason.empty() ? "" : " (" + s.blocked_reason + ")"));
    field("Started", format_time(s.started_at) + " (" + age(s.started_at, now) + " ago)");
    field("Updated", format_time(s.updated_at) + " (" + age(s.updated_at, now) + " ago)");
    if (s.deadline) field("Deadline", format_time(*s.deadline));
    field("Owner", owner.empty() ? "-" : owner + (lease ? ", lease until " + format_time(*lease) +
                                                             (*lease < now ? " (expired)" : "")
                                                       : ""));
    if (failed) {
        field("Failed at", paint(s.failed_step, Colour::red, colour) + " (" + std::string(to_string(s.failure_kind)) +
                               "): " + s.error);
    }
    if (!s.failed_compensation.empty()) {
        field("Gave up", paint("compensation of " + s.failed_compensation, Colour::red, colour) + ": " +
                             s.compensation_error);
    }
    std::cout << '\n';
    Table t({"TIME", "KIND", "STEP", "TRY", "DURATION", "OUTCOME", "ERROR"});
    for (const auto& e : timeline.entries) {
        Colour outcome_colour = Colour::none;
        if (e.outcome == "failed") outcome_colour = e.final ? Colour::red : Colour::yellow;
        if (e.kind == "saga") outcome_colour = phase_colour(e.outcome);
        std::string error = e.error;
        if (!e.failure_kind.empty()) error = e.failure_kind + (e.final ? ", final" : "") + ": " + error;
        for (const auto& o : e.outages) error += (error.empty() ? "" : "; ") + std::string("waited out: ") + o;
        if (e.kind == "saga" && !e.owner.empty()) {
            error = "owner " + e.owner + (e.lease ? ", lease " + format_duration(*e.lease) : "") +
                    (error.empty() ? "" : "; " + error);
        }
        t.add({format_time(e.at), e.kind, e.name,
               e.kind == "saga" ? "" : std::to_string(e.attempt), e.duration ? format_duration(*e.duration) : "",
               Cell(e.outcome, outcome_colour), shorten(error, 100)});
    }
    t.print(std::cout, colour);
}

}  // namespace

json saga_record_json(const SagaRecord& r) {
    return json{{"saga_id", r.saga_id},
                {"saga_type", r.saga_type},
                {"definition_version", r.definition_version},
                {"fingerprint", text_or_null(r.fingerprint)},
                {"phase", to_string(r.phase)},
                {"version", r.version},
                {"blocked_reason", text_or_null(r.blocked_reason)},
                {"failed_step", text_or_null(r.failed_step)},
                {"failure_kind", r.failure_kind == FailureKind::none ? json(nullptr) : json(to_string(r.failure_kind))},
                {"error", text_or_null(r.error)},
                {"failed_compensation", text_or_null(r.failed_compensation)},
                {"compensation_error", text_or_null(r.compensation_error)},
                {"deadline", json_time(r.deadline)},
                {"started_at", format_timestamp(r.started_at)},
                {"updated_at", format_timestamp(r.updated_at)},
                {"owner", text_or_null(r.owner)},
                {"lease_until", json_time(r.lease_until)}};
}

// ---- operator requests (retry, cancel) -------------------------------------

// What an operator's request did, saga by saga, as JSON or a table, with a
// last line saying how many (`done`, `would`: the verb for each case). Throws
// CommandError(failed) when some named saga was not done: the command did not
// do all it was asked. Returns how many were done.
struct RequestVerbs {
    std::string_view done;    // " retried"
    std::string_view would;   // " would be retried"
    std::string_view none;    // "No saga to retry." (a selection that found none)
    std::string_view failed;  // " sagas not retried"
};

void print_request_results(const GlobalOptions& global, bool dry_run, const std::string& by,
                           const std::vector<SagaRequestResult>& results, bool named, const RequestVerbs& verbs) {
    const auto ok = [](const SagaRequestResult& r) {
        return r.outcome == RequestOutcome::requested || r.outcome == RequestOutcome::would_request;
    };
    const auto done = static_cast<std::size_t>(std::count_if(results.begin(), results.end(), ok));
    if (global.json) {
        json out = json::array();
        for (const auto& r : results) {
            out.push_back(json{{"saga_id", r.saga_id},
                               {"outcome", to_string(r.outcome)},
                               {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)}});
        }
        print_json(std::cout, json{{"dry_run", dry_run}, {"by", by}, {"results", out}});
    } else if (results.empty()) {
        std::cout << verbs.none << "\n";
    } else {
        Table table({"SAGA", "OUTCOME", "WHY"});
        for (const auto& r : results) {
            table.add({r.saga_id, Cell(std::string(to_string(r.outcome)), ok(r) ? Colour::green : Colour::red),
                       or_dash(r.reason)});
        }
        table.print(std::cout, stdout_wants_colour());
        std::cout << done << " of " << results.size() << (dry_run ? verbs.would : verbs.done) << "\n";
    }
    if (done < results.size() && named) {
        throw CommandError(ExitStatus::failed, std::to_string(results.size() - done) + " of " +
                                                   std::to_string(results.size()) + std::string(verbs.failed));
    }
}

// ---- sagas retry -----------------------------------------------------------

struct RetryOptions {
    std::vector<std::string> ids;
    std::string phase;
    std::string type;
    std::size_t limit = 10000;
    std::string reason;
    std::string as;
    bool dry_run = false;
};

// Recorded in each saga's stream (SagaRetryRequested), carried out by the
// orchestrator that claims it: never a table edit.
void retry(const GlobalOptions& global, const RetryOptions& o) {
    RetryRequest request;
    request.saga_ids = o.ids;
    if (!o.phase.empty()) {
        const auto phase = saga_phase_from_string(o.phase);
        if (phase != SagaPhase::failed && phase != SagaPhase::blocked) {
            throw CommandError(ExitStatus::usage, "--phase: expected failed or blocked, got '" + o.phase + "'");
        }
        request.phase = *phase;
    }
    request.saga_type = o.type;
    request.limit = o.limit;
    request.by = operator_name(o.as);
    request.reason = o.reason;
    request.dry_run = o.dry_run;
    SagaIndexConnection c(global);
    const auto results = c.run(request_retry(c.store.store(), c.index, std::move(request)));
    print_request_results(global, o.dry_run, operator_name(o.as), results, !o.ids.empty(),
                          {" retried", " would be retried", "No saga to retry.", " sagas not retried"});
}

// ---- sagas cancel ----------------------------------------------------------

struct CancelOptions {
    std::vector<std::string> ids;
    std::string reason;
    std::string as;
    bool dry_run = false;
};

// Recorded in each saga's stream (SagaCancelRequested), carried out by the
// orchestrators: the one running the saga stops it, the next one to claim it
// compensates. Never a table edit.
void cancel(const GlobalOptions& global, const CancelOptions& o) {
    CancelRequest request;
    request.saga_ids = o.ids;
    request.by = operator_name(o.as);
    request.reason = o.reason;
    request.dry_run = o.dry_run;
    SagaIndexConnection c(global);
    const auto results = c.run(request_cancel(c.store.store(), std::move(request)));
    print_request_results(global, o.dry_run, operator_name(o.as), results, true,
                          {" cancelled (their orchestrators compensate them)", " would be cancelled",
                           "No saga to cancel.", " sagas not cancelled"});
}

void add_saga_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action) {
    auto* sagas = app.add_subcommand("sagas", "Sagas: list, count, find the stuck ones, show one's history, retry, cancel");
    sagas->require_subcommand(1);

    auto lo = std::make_shared<ListOptions>();
    auto* list_cmd = sagas->add_subcommand("list", "List sagas, by id");
    list_cmd->add_option("--phase", lo->phase, "Only this phase: running, compensating, completed, compensated, failed, blocked");
    list_cmd->add_option("--type", lo->type, "Only this saga type");
    list_cmd->add_option("--since", lo->since, "Only sagas started since TIME (RFC 3339, or -1h, -30m)");
    list_cmd->add_option("--after", lo->after, "Paging: only ids after this one");
    list_cmd->add_option("--limit", lo->limit, "At most N sagas")->capture_default_str()->check(CLI::Range(1, 10000));
    list_cmd->callback([&action, &global, lo] { action = [&global, lo] { list(global, *lo); }; });

    auto* stats_cmd = sagas->add_subcommand("stats", "Count sagas by type and phase; definitions in flight");
    stats_cmd->callback([&action, &global] { action = [&global] { stats(global); }; });

    auto idle = std::make_shared<std::string>("5m");
    auto stuck_limit = std::make_shared<std::size_t>(100);
    auto* stuck_cmd = sagas->add_subcommand(
        "stuck", "Sagas that need attention: failed, blocked, or in flight with nobody running them");
    stuck_cmd->add_option("--idle", *idle, "In flight, never owned and unchanged this long (30s, 5m, 2h)")
        ->capture_default_str();
    stuck_cmd->add_option("--limit", *stuck_limit, "At most N sagas")->capture_default_str()->check(CLI::Range(1, 10000));
    stuck_cmd->callback([&action, &global, idle, stuck_limit] { action = [&global, idle, stuck_limit] { stuck(global, *idle, *stuck_limit); }; });

    auto id = std::make_shared<std::string>();
    auto* show_cmd = sagas->add_subcommand("show", "One saga's timeline: every attempt of every step and compensation");
    show_cmd->add_option("id", *id, "The saga id")->required();
    show_cmd->callback([&action, &global, id] { action = [&global, id] { show(global, *id); }; });

    auto ro = std::make_shared<RetryOptions>();
    auto* retry_cmd = sagas->add_subcommand(
        "retry", "Ask for failed (or blocked) sagas to be tried again by the orchestrators; recorded in each saga");
    auto* named = retry_cmd->add_option("id", ro->ids, "Saga ids (or --phase)");
    retry_cmd->add_option("--phase", ro->phase, "Every saga in this phase: failed or blocked")->excludes(named);
    retry_cmd->add_option("--type", ro->type, "With --phase: only this saga type");
    retry_cmd->add_option("--limit", ro->limit, "With --phase: at most N sagas")->capture_default_str()->check(CLI::Range(1, 100000));
    retry_cmd->add_option("--reason", ro->reason, "Why, for the audit record");
    retry_cmd->add_option("--as", ro->as, "Who is acting, for the audit record (default: user@host)");
    retry_cmd->add_flag("--dry-run", ro->dry_run, "List what would be retried; record and change nothing");
    retry_cmd->callback([&action, &global, ro] {
        if (ro->ids.empty() && ro->phase.empty()) throw CLI::ValidationError("sagas retry", "give saga ids or --phase");
        action = [&global, ro] { retry(global, *ro); };
    });

    auto co = std::make_shared<CancelOptions>();
    auto* cancel_cmd = sagas->add_subcommand(
        "cancel", "Ask for running sagas to be cancelled: their orchestrators compensate them; recorded in each saga");
    cancel_cmd->add_option("id", co->ids, "Saga ids")->required();
    cancel_cmd->add_option("--reason", co->reason, "Why, for the audit record and the saga's error")->required();
    cancel_cmd->add_option("--as", co->as, "Who is acting, for the audit record (default: user@host)");
    cancel_cmd->add_flag("--dry-run", co->dry_run, "List what would be cancelled; record and change nothing");
    cancel_cmd->callback([&action, &global, co] { action = [&global, co] { cancel(global, *co); }; });
}

}  // namespace boong::cli
