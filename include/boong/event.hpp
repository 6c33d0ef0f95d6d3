// Events: what is appended to a stream, what is read back, and their ids.
#pragma once

#include <boong/error.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boong {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

// How deeply JSON values (payloads, metadata, snapshots) may nest by default:
// 128 arrays or objects inside one another. Deeper values are refused when
// written (invalid_argument) and when read (a stream entry that nests deeper
// is dead-lettered without being decoded): walking a value copies, compares
// and prints it recursively, and a hostile message 100,000 levels deep would
// otherwise overflow the stack of whatever thread touched it. Brokers
// (RedisBrokerConfig::max_json_depth) and the EventRegistry take a limit of
// their own; the stores use this one.
inline constexpr int default_max_json_depth = 128;

// True when `j` nests more than `max_depth` arrays or objects (a scalar is
// depth 0, [] and {} depth 1). Iterative: safe on any value.
bool json_depth_exceeds(const json& j, int max_depth) noexcept;

// Who caused an event and which business flow it belongs to. The typed fields
// are the ones every event has; `extra` holds anything a service adds (tenant,
// user, trace ids) and must be a JSON object when not null.
struct EventMetadata {
    std::string correlation_id;  // the flow (a saga id, an order id) the event belongs to
    std::string causation_id;    // the event or command that caused this one
    Clock::time_point timestamp{};
    json extra;

    friend bool operator==(const EventMetadata&, const EventMetadata&) = default;
};

// An event as handed to the store or broker. Immutable once appended.
struct EventData {
    std::string event_id;  // UUID; also the idempotency key of an append
    std::string type;      // e.g. "OrderCreated", "StepCompleted"
    int schema_version = 1;
    json payload;
    EventMetadata metadata;

    friend bool operator==(const EventData&, const EventData&) = default;
};

// An event as read back: the data plus where the store put it.
struct RecordedEvent {
    std::string stream_id;
    std::int64_t version = 0;   // 1-based position within the stream
    std::int64_t position = 0;  // 1-based global order across all streams
    Clock::time_point stored_at{};
    EventData event;
};

// The version a stream must be at for an append to succeed.
class ExpectedVersion {
public:
    // No check: append whatever the stream's version.
    static constexpr ExpectedVersion any() noexcept { return ExpectedVersion{kAny}; }
    // The stream must not exist yet (no events).
    static constexpr ExpectedVersion no_stream() noexcept { return ExpectedVersion{0}; }
    // The stream's last event must have this version. A negative value is
    // refused by append with errc::invalid_argument.
    static constexpr ExpectedVersion exactly(std::int64_t v) noexcept { return ExpectedVersion{v}; }

    constexpr bool is_any() const noexcept { return value_ == kAny; }
    constexpr std::int64_t value() const noexcept { return value_; }
    constexpr bool valid() const noexcept { return is_any() || value_ >= 0; }

    friend constexpr bool operator==(ExpectedVersion, ExpectedVersion) = default;

private:
    static constexpr std::int64_t kAny = INT64_MIN;
    constexpr explicit ExpectedVersion(std::int64_t v) noexcept : value_(v) {}
    std::int64_t value_;
};

// What a successful append reports.
struct AppendResult {
    std::int64_t next_expected_version = 0;  // the stream's version after the append
    std::int64_t first_position = 0;         // global position of the first appended event
    std::int64_t last_position = 0;
};

// The latest known state of a stream, so a reader need not replay it from the start.
struct Snapshot {
    std::string stream_id;
    std::int64_t version = 0;  // the stream version the state reflects
    std::string type;          // what the state is, e.g. "OrderState"
    int schema_version = 1;
    json state;
    Clock::time_point taken_at{};
};

// Generates RFC 9562 version-7 UUIDs: a millisecond timestamp (so ids sort
// roughly by creation and index well) followed by a per-generator counter
// scrambled with a random seed. Thread-safe; unique within a generator by
// construction and across processes by the 64-bit random seed.
class IdGenerator {
public:
    IdGenerator();                               // seeded from the kernel (getrandom)
    explicit IdGenerator(std::uint64_t seed) noexcept : seed_(seed) {}

    std::string next();
    // The same, with the time the caller already read (its timestamp part).
    std::string next(Clock::time_point now);

private:
    std::uint64_t seed_;
    std::atomic<std::uint64_t> counter_{0};
};

// True when `s` is a UUID in canonical 8-4-4-4-12 hex form.
bool is_uuid(std::string_view s) noexcept;

// The RFC 9562 version-5 (name-based, SHA-1) UUID of `name` in the namespace
// `namespace_id` (a UUID, e.g. one per service and purpose): the same name
// always gives the same id. An event id derived from a client's idempotency
// key makes a retried request's append a replay of the first, not a second
// event. Error(errc::invalid_argument) when namespace_id is not a UUID.
std::string name_based_id(std::string_view namespace_id, std::string_view name);

// Serialization used by stores, brokers and tools (metadata timestamps as
// RFC 3339 UTC strings with microseconds).
void to_json(json& j, const EventMetadata& m);
void from_json(const json& j, EventMetadata& m);
void to_json(json& j, const EventData& e);
void from_json(const json& j, EventData& e);
void to_json(json& j, const RecordedEvent& e);

std::string format_timestamp(Clock::time_point t);
// Throws boong::Error(errc::invalid_argument) on anything but RFC 3339.
Clock::time_point parse_timestamp(std::string_view s);

}  // namespace boong
