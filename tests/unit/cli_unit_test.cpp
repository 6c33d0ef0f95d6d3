// The pieces of the `boong` tool that need no server: durations and times
// as operators type them, tables, and the saga timeline built from events.
#include "cli/exit_status.hpp"
#include "cli/output.hpp"
#include "cli/saga_timeline.hpp"
#include "cli/time_text.hpp"

#include <catch2/catch.hpp>

#include <sstream>

namespace {

using namespace boong;
using namespace boong::cli;
using namespace std::chrono_literals;

ExitStatus status_of(auto&& f) {
    try {
        f();
    } catch (const CommandError& e) {
        return e.status();
    }
    return ExitStatus::ok;
}

// A saga event at `t0 + ms`.
RecordedEvent event(std::int64_t version, std::string type, json payload, int ms) {
    static const auto t0 = parse_timestamp("2024-05-01T12:00:00Z");
    RecordedEvent e;
    e.stream_id = "saga-x";
    e.version = version;
    e.position = version;
    e.event.event_id = IdGenerator().next();
    e.event.type = std::move(type);
    e.event.payload = std::move(payload);
    e.event.metadata.timestamp = t0 + std::chrono::milliseconds(ms);
    return e;
}

}  // namespace

TEST_CASE("cli durations: units, combinations, refusals", "[cli]") {
    CHECK(parse_duration("500ms", "--idle") == 500ms);
    CHECK(parse_duration("30s", "--idle") == 30s);
    CHECK(parse_duration("5m", "--idle") == 5min);
    CHECK(parse_duration("2h", "--idle") == 2h);
    CHECK(parse_duration("1d", "--idle") == 24h);
    CHECK(parse_duration("1h30m", "--idle") == 90min);
    for (const char* bad : {"", "30", "5x", "m", "-5m", "1.5h", "5 m"}) {
        INFO(bad);
        CHECK(status_of([&] { parse_duration(bad, "--idle"); }) == ExitStatus::usage);
    }
    try {
        parse_duration("30", "--idle");
    } catch (const CommandError& e) {
        CHECK(std::string(e.what()) == "--idle: expected a duration such as 500ms, 30s, 5m, 2h, 1d or 1h30m, got '30'");
    }
    CHECK(format_duration(350ms) == "350ms");
    CHECK(format_duration(4200ms) == "4.2s");
    CHECK(format_duration(192s) == "3m12s");
    CHECK(format_duration(125min) == "2h5m");
    CHECK(format_duration(100h) == "4d4h");
}

TEST_CASE("cli times: RFC 3339, now, and relative to now", "[cli]") {
    const auto now = parse_timestamp("2024-05-01T12:00:00Z");
    CHECK(parse_time("now", "--since", now) == now);
    CHECK(parse_time("-1h", "--since", now) == parse_timestamp("2024-05-01T11:00:00Z"));
    CHECK(parse_time("2024-04-30T10:00:00+02:00", "--since", now) == parse_timestamp("2024-04-30T08:00:00Z"));
    CHECK(parse_time("2024-04-30T10:00:00-01:30", "--since", now) == parse_timestamp("2024-04-30T11:30:00Z"));
    CHECK(parse_time("2024-04-30", "--since", now) == parse_timestamp("2024-04-30T00:00:00Z"));
    CHECK(status_of([&] { parse_time("yesterday", "--since", now); }) == ExitStatus::usage);
    CHECK(status_of([&] { parse_time("2024-04-30T10:00:00+0x:00", "--since", now); }) == ExitStatus::usage);
    CHECK(status_of([&] { parse_time("+1h", "--since", now); }) == ExitStatus::usage);
    CHECK(format_time(now) == "2024-05-01 12:00:00Z");
}

TEST_CASE("cli tables: aligned columns, dashes for blanks, colour only when asked", "[cli]") {
    Table t({"ID", "PHASE", "ERROR"});
    t.add({"a", Cell("completed", Colour::green), ""});
    t.add({"long-id", Cell("failed", Colour::red), "boom"});
    std::ostringstream plain;
    t.print(plain, false);
    CHECK(plain.str() ==
          "ID       PHASE      ERROR\n"
          "a        completed  -\n"
          "long-id  failed     boom\n");
    std::ostringstream coloured;
    t.print(coloured, true);
    CHECK(coloured.str().find("\033[31mfailed\033[0m     boom") != std::string::npos);
    CHECK(shorten("abcdef", 4) == "abc…");
    CHECK(shorten("abc", 4) == "abc");
}

TEST_CASE("cli saga timeline: attempts with durations, outages, compensations", "[cli]") {
    const json definition = {{"version", 1}, {"fingerprint", "f"}, {"steps", "a>b"}};
    std::vector<RecordedEvent> events{
        event(1, "SagaStarted", {{"saga_type", "t"}, {"data", json::object()}, {"definition", definition}}, 0),
        event(2, "StepStarted", {{"step", "a"}, {"attempt", 1}}, 1),
        event(3, "StepFailed", {{"step", "a"}, {"attempt", 1}, {"kind", "unavailable"}, {"error", "db down"}, {"final", false}}, 5),
        event(4, "StepCompleted", {{"step", "a"}, {"attempt", 1}, {"data", json::object()}}, 2001),
        event(5, "StepStarted", {{"step", "b"}, {"attempt", 1}}, 2002),
        event(6, "StepFailed", {{"step", "b"}, {"attempt", 1}, {"kind", "transient"}, {"error", "boom"}, {"final", false}}, 2010),
        event(7, "StepStarted", {{"step", "b"}, {"attempt", 2}}, 2020),
        event(8, "StepFailed", {{"step", "b"}, {"attempt", 2}, {"kind", "timeout"}, {"error", "slow"}, {"final", true}}, 3020),
        event(9, "CompensationStarted", {{"failed_step", "b"}, {"kind", "timeout"}, {"error", "slow"}}, 3021),
        event(10, "StepCompensating", {{"step", "a"}, {"attempt", 1}}, 3022),
        event(11, "CompensationFailed", {{"step", "a"}, {"attempt", 1}, {"kind", "transient"}, {"error", "no"}, {"final", true}}, 3030),
        event(12, "SagaFailed", {{"step", "a"}, {"error", "no"}}, 3031),
    };
    events[0].event.metadata.extra = {{"owner", "orch/1"}, {"lease_ms", 30000}};
    const SagaTimeline t = build_timeline(events);
    CHECK(t.state.phase == SagaPhase::failed);
    REQUIRE(t.entries.size() == 7);
    CHECK(t.entries[0].kind == "saga");
    CHECK(t.entries[0].owner == "orch/1");
    CHECK(t.entries[0].lease == 30000ms);
    // a: one attempt, that waited out an outage and then completed, 2 s after it started.
    CHECK(t.entries[1].name == "a");
    CHECK(t.entries[1].outcome == "completed");
    CHECK(t.entries[1].duration == 2000ms);
    CHECK(t.entries[1].outages == std::vector<std::string>{"db down"});
    CHECK(t.entries[2].outcome == "failed");
    CHECK(!t.entries[2].final);
    CHECK(t.entries[2].duration == 8ms);
    CHECK(t.entries[3].attempt == 2);
    CHECK(t.entries[3].failure_kind == "timeout");
    CHECK(t.entries[3].final);
    CHECK(t.entries[4].error == "b failed (timeout): slow");
    CHECK(t.entries[5].kind == "compensation");
    CHECK(t.entries[5].outcome == "failed");
    CHECK(t.entries[6].outcome == "failed");
    CHECK(t.entries[6].error == "compensation of a gave up: no");
    CHECK(to_json(t.entries[1])["duration_ms"] == 2000);
    CHECK(to_json(t.entries[0])["final"] == nullptr);

    // An attempt still open has no duration and reads "running".
    std::vector<RecordedEvent> open{events[0], events[1]};
    const SagaTimeline running = build_timeline(open);
    CHECK(running.entries.back().outcome == "running");
    CHECK(!running.entries.back().duration);
    CHECK_THROWS_AS(build_timeline({}), Error);

    // Blocked, then moved to version 2 by an operator: who and why are shown.
    std::vector<RecordedEvent> moved{events[0], events[1],
                                     event(3, "SagaBlocked", {{"reason", "v1 not served"}, {"phase", "running"}}, 10),
                                     event(4, "SagaMigrated",
                                           {{"to", {{"version", 2}}}, {"by", "alice"}, {"reason", "retire v1"}}, 20)};
    const SagaTimeline migrated = build_timeline(moved);
    CHECK(migrated.state.definition.version == 2);
    CHECK(migrated.entries.back().outcome == "migrated");
    CHECK(migrated.entries.back().error == "to version 2 by alice: retire v1");
}
