// Signed envelopes without a broker: what is signed, what a change to any
// field does, key rotation, and key rings that are refused (never printing a
// secret). The brokers run the same checks end to end in the broker
// conformance suite ("a signed broker dead-letters ...").
#include <boong/error.hpp>
#include <boong/signed_broker.hpp>
#include <boong/memory/broker.hpp>
#include <boong/signing.hpp>

#include "support/async.hpp"
#include "support/events.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using boong::EventData;
using boong::KeyRing;
using boong::SigningKey;
using boong::test::code_of;
using boong::test::message_of;

static_assert(boong::Broker<boong::SignedBroker<boong::MemoryBroker>>);
static_assert(boong::DeadLetterQueue<boong::SignedBroker<boong::MemoryBroker>>);

EventData sample() {
    EventData e;
    e.event_id = "0190b8e0-0000-7000-8000-000000000001";
    e.type = "OrderCreated";
    e.schema_version = 2;
    e.payload = {{"order_id", "o-1"}, {"quantity", 2}, {"amount_cents", 1999}, {"note", "ünïcødé"}};
    e.metadata.correlation_id = "order-o-1";
    e.metadata.causation_id = "cause-1";
    e.metadata.timestamp = boong::Clock::time_point(std::chrono::microseconds(1'796'000'000'123'456));
    e.metadata.extra = {{"tenant", "acme"}};
    return e;
}

std::string secret(char c) { return std::string(32, c); }

}  // namespace

TEST_CASE("signing: a signed event is authentic for its topic; any change to what it says is caught",
          "[signing]") {
    const KeyRing keys({{"k1", secret('a')}}, "k1");
    auto e = sample();
    CHECK(boong::signature_problem(e, "OrderCreated", keys) == "unsigned");
    boong::sign_event(e, "OrderCreated", keys);
    REQUIRE(e.metadata.extra.contains("signature"));
    CHECK(e.metadata.extra["signature"]["key"] == "k1");
    CHECK(e.metadata.extra["signature"]["hmac_sha256"].get<std::string>().size() == 64);
    CHECK_FALSE(boong::signature_problem(e, "OrderCreated", keys));

    // As a broker carries it: written and read back as JSON, keys in any order.
    const auto text = boong::json{{"extra", e.metadata.extra}, {"payload", e.payload}}.dump();
    auto carried = e;
    const auto parsed = boong::json::parse(text);
    carried.payload = parsed["payload"];
    carried.metadata.extra = parsed["extra"];
    CHECK_FALSE(boong::signature_problem(carried, "OrderCreated", keys));
    // A broker that dead-letters it adds "dead_letter": still authentic.
    carried.metadata.extra["dead_letter"] = {{"reason", "handler failed"}};
    CHECK_FALSE(boong::signature_problem(carried, "OrderCreated", keys));

    const std::vector<std::pair<std::string, std::function<void(EventData&)>>> changes{
        {"event id", [](EventData& x) { x.event_id[0] = '1'; }},
        {"type", [](EventData& x) { x.type = "OrderCancelled"; }},
        {"version", [](EventData& x) { x.schema_version = 3; }},
        {"payload value", [](EventData& x) { x.payload["quantity"] = -1000; }},
        {"payload field added", [](EventData& x) { x.payload["refund"] = true; }},
        {"correlation", [](EventData& x) { x.metadata.correlation_id = "order-o-2"; }},
        {"causation", [](EventData& x) { x.metadata.causation_id = "cause-2"; }},
        {"timestamp", [](EventData& x) { x.metadata.timestamp += std::chrono::microseconds(1); }},
        {"extra", [](EventData& x) { x.metadata.extra["tenant"] = "evil"; }},
        {"mac", [](EventData& x) {
             auto& mac = x.metadata.extra["signature"]["hmac_sha256"].get_ref<std::string&>();
             mac[0] = mac[0] == '0' ? '1' : '0';
         }},
    };
    for (const auto& [what, change] : changes) {
        INFO(what);
        auto x = e;
        change(x);
        const auto problem = boong::signature_problem(x, "OrderCreated", keys);
        REQUIRE(problem);
        CHECK_THAT(*problem, Catch::Contains("bad signature (key 'k1')"));
    }
    CHECK(boong::signature_problem(e, "OrderCancelled", keys));  // another topic
    // Signing again replaces the signature (and takes the new fields in).
    auto resigned = e;
    resigned.payload["quantity"] = 3;
    boong::sign_event(resigned, "OrderCreated", keys);
    CHECK_FALSE(boong::signature_problem(resigned, "OrderCreated", keys));
}

TEST_CASE("signing: during a rotation both keys verify; a key the consumer lacks is named", "[signing]") {
    const KeyRing before({{"k1", secret('a')}}, "k1");
    const KeyRing during({{"k1", secret('a')}, {"k2", secret('b')}}, "k2");
    const KeyRing after({{"k2", secret('b')}}, "k2");
    const KeyRing verify_only({{"k2", secret('b')}}, "");
    auto old_message = sample();
    boong::sign_event(old_message, "t", before);
    auto new_message = sample();
    boong::sign_event(new_message, "t", during);
    CHECK(new_message.metadata.extra["signature"]["key"] == "k2");
    CHECK_FALSE(boong::signature_problem(old_message, "t", during));
    CHECK_FALSE(boong::signature_problem(new_message, "t", during));
    CHECK_FALSE(boong::signature_problem(new_message, "t", after));
    CHECK_FALSE(boong::signature_problem(new_message, "t", verify_only));
    CHECK(boong::signature_problem(old_message, "t", after) ==
          "signed with key 'k1', which this service does not hold");
    // The same id with another secret: not the key.
    const KeyRing impostor({{"k2", secret('x')}}, "k2");
    auto forged = sample();
    boong::sign_event(forged, "t", impostor);
    CHECK_THAT(*boong::signature_problem(forged, "t", after), Catch::Contains("bad signature"));
    CHECK(code_of([&] {
              auto x = sample();
              boong::sign_event(x, "t", verify_only);
          }) == boong::errc::invalid_config);
    CHECK(verify_only.ids() == std::vector<std::string>{"k2"});
}

TEST_CASE("signing: malformed signatures are refused with the reason", "[signing]") {
    const KeyRing keys({{"k1", secret('a')}}, "k1");
    auto e = sample();
    const std::vector<std::pair<boong::json, std::string>> cases{
        {"trust me", "malformed signature"},
        {boong::json{{"key", "k1"}}, "malformed signature"},
        {boong::json{{"key", 7}, {"hmac_sha256", std::string(64, '0')}}, "malformed signature"},
        {boong::json{{"key", "k1"}, {"hmac_sha256", "zz"}}, "not 64 hex digits"},
        {boong::json{{"key", "k1"}, {"hmac_sha256", std::string(62, '0')}}, "not 64 hex digits"},
        {boong::json{{"key", "k1'; DROP"}, {"hmac_sha256", std::string(64, '0')}}, "(not a key id)"},
    };
    for (const auto& [signature, reason] : cases) {
        INFO(signature.dump());
        e.metadata.extra["signature"] = signature;
        const auto problem = boong::signature_problem(e, "t", keys);
        REQUIRE(problem);
        CHECK_THAT(*problem, Catch::Contains(reason));
    }
    e.metadata.extra = "not an object";
    CHECK(boong::signature_problem(e, "t", keys) == "unsigned");
}

TEST_CASE("signing: bad key rings are refused, naming the key and never its secret", "[signing]") {
    const std::string s = "0123456789abcdef0123456789abcdef";  // 32 bytes
    auto refused = [&](std::vector<SigningKey> keys, std::string sign_with, const std::string& because) {
        INFO(because);
        const auto what = message_of([&] { KeyRing r(std::move(keys), std::move(sign_with)); });
        CHECK_THAT(what, Catch::Contains(because));
        CHECK(what.find(s) == std::string::npos);
        CHECK(what.find("short-secret") == std::string::npos);
    };
    refused({}, "", "no key");
    refused({{"k1", "short-secret"}}, "k1", "the secret of key 'k1' has 12 bytes; at least 32");
    refused({{"k 1", s}}, "", "key id 'k 1' is not");
    refused({{"", s}}, "", "key id '' is not");
    refused({{std::string(65, 'k'), s}}, "", "is not 1..64");
    refused({{"k1", s}, {"k1", s}}, "k1", "key 'k1' is listed twice");
    refused({{"k1", s}}, "k9", "sign_with names key 'k9'");
    CHECK(code_of([&] { KeyRing r({}, ""); }) == boong::errc::invalid_config);
}

TEST_CASE("signing: key rings from JSON and from a file only its owner reads", "[signing]") {
    const std::string hex(64, 'a');  // 32 bytes of 0xaa
    const boong::json doc = {{"sign_with", "k2"},
                             {"keys", {{{"id", "k1"}, {"secret_hex", hex}}, {{"id", "k2"}, {"secret_hex", hex}}}}};
    const auto ring = KeyRing::from_json(doc);
    CHECK(ring.sign_with() == "k2");
    CHECK(ring.ids() == std::vector<std::string>{"k1", "k2"});
    // The same secret as raw bytes signs the same.
    const KeyRing raw({{"k2", std::string(32, static_cast<char>(0xaa))}}, "k2");
    auto e = sample();
    boong::sign_event(e, "t", ring);
    CHECK_FALSE(boong::signature_problem(e, "t", raw));

    auto refused = [](const boong::json& d, const std::string& because) {
        INFO(d.dump());
        const auto what = message_of([&] { KeyRing::from_json(d); });
        CHECK_THAT(what, Catch::Contains(because));
        CHECK(what.find("secret-in-clear") == std::string::npos);
    };
    refused(boong::json::array(), "expected an object");
    refused({{"keys", "k1"}}, "\"keys\" must be an array");
    refused({{"keys", {{{"id", "k1"}}}}}, "each key must be");
    refused({{"keys", {{{"id", "k1"}, {"secret_hex", "secret-in-clear"}}}}}, "the secret of key 'k1' is not hex");
    refused({{"sign_with", 1}, {"keys", {{{"id", "k1"}, {"secret_hex", hex}}}}}, "\"sign_with\" must be a key id");

    const auto dir = std::filesystem::temp_directory_path() / ("boong-signing-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = dir / "keys.json";
    {
        std::ofstream out(path);
        out << doc.dump();
    }
    ::chmod(path.c_str(), 0644);
    CHECK_THAT(message_of([&] { KeyRing::from_file(path); }), Catch::Contains("may be read by its group or others"));
    ::chmod(path.c_str(), 0600);
    CHECK(KeyRing::from_file(path).sign_with() == "k2");
    {
        std::ofstream out(path);
        out << "{ not json";
    }
    CHECK_THAT(message_of([&] { KeyRing::from_file(path); }), Catch::Contains("is not JSON"));
    CHECK_THAT(message_of([&] { KeyRing::from_file(dir / "missing.json"); }), Catch::Contains("cannot read"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("signing: a signed broker needs a ring, and a key to sign with when it signs", "[signing]") {
    boost::asio::io_context ioc;
    boong::MemoryBroker broker(ioc.get_executor());
    auto verify_only = std::make_shared<const KeyRing>(std::vector<SigningKey>{{"k1", secret('a')}}, "");
    CHECK(code_of([&] { boong::SignedBroker b(broker, nullptr); }) == boong::errc::invalid_config);
    CHECK(code_of([&] { boong::SignedBroker b(broker, verify_only); }) == boong::errc::invalid_config);
    boong::SignedBroker consumer_only(broker, verify_only, {.sign = false, .require = true});
    CHECK(&consumer_only.next_layer() == &broker);
}

TEST_CASE("signing: an event no broker would take is refused, through the completion, and left as it was",
          "[signing]") {
    const auto keys = std::make_shared<const KeyRing>(std::vector<SigningKey>{{"k1", secret('a')}}, "k1");
    auto not_object = sample();
    not_object.metadata.extra = "a string";
    CHECK(code_of([&] { boong::sign_event(not_object, "t", *keys); }) == boong::errc::invalid_argument);
    CHECK(not_object.metadata.extra == "a string");
    auto not_utf8 = sample();
    not_utf8.payload["note"] = std::string("\xff\xfe");
    CHECK_THAT(message_of([&] { boong::sign_event(not_utf8, "t", *keys); }),
               Catch::Contains("cannot be written as JSON"));
    auto unsigned_extra = sample();
    unsigned_extra.metadata.extra = nullptr;  // none yet: signing makes it an object
    boong::sign_event(unsigned_extra, "t", *keys);
    CHECK_FALSE(boong::signature_problem(unsigned_extra, "t", *keys));

    boost::asio::io_context ioc;
    boong::MemoryBroker broker(ioc.get_executor());
    boong::SignedBroker signed_broker(broker, keys);
    auto publish_bad = [&] { return signed_broker.async_publish("t", not_object, boost::asio::use_awaitable); };
    CHECK(code_of([&] { boong::test::run(ioc, publish_bad); }) == boong::errc::invalid_argument);
    const auto id =
        boong::test::run(ioc, [&] { return signed_broker.async_publish("t", sample(), boost::asio::use_awaitable); });
    CHECK_FALSE(id.empty());
    const auto stored = broker.read_topic("t");
    REQUIRE(stored.size() == 1);
    CHECK_FALSE(boong::signature_problem(stored[0].event, "t", *keys));
}
