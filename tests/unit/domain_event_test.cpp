// Typed, versioned domain events: encoding, decoding, upcasting and the
// errors a service gets for events it cannot read.
#include <boong/domain_event.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <string>

namespace {

struct OrderPlaced {
    static constexpr std::string_view event_name = "OrderPlaced";
    static constexpr int event_version = 3;
    std::string order_id;
    std::int64_t amount_cents = 0;
    std::string currency;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OrderPlaced, order_id, amount_cents, currency)

struct Other {
    static constexpr std::string_view event_name = "Other";
    static constexpr int event_version = 1;
    int x = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Other, x)

static_assert(boong::DomainEvent<OrderPlaced>);

boong::EventRegistry registry() {
    boong::EventRegistry r;
    r.add<OrderPlaced>();
    r.add<Other>();
    // v1: {"id", "amount"} in whole units; v2 renamed id; v3 added the currency.
    r.add_upcaster("OrderPlaced", 1, [](boong::json p) {
        p["order_id"] = p.at("id");
        p.erase("id");
        return p;
    });
    r.add_upcaster("OrderPlaced", 2, [](boong::json p) {
        p["amount_cents"] = p.at("amount").get<std::int64_t>() * 100;
        p.erase("amount");
        p["currency"] = "EUR";
        return p;
    });
    return r;
}

boong::EventData stored(std::string type, int version, boong::json payload) {
    boong::EventData e;
    e.event_id = boong::IdGenerator().next();
    e.type = std::move(type);
    e.schema_version = version;
    e.payload = std::move(payload);
    return e;
}

boong::errc code_of(const std::function<void()>& f, std::string* message = nullptr) {
    try {
        f();
    } catch (const boong::Error& e) {
        if (message) *message = e.what();
        return static_cast<boong::errc>(e.code().value());
    }
    return boong::errc{};
}

}  // namespace

TEST_CASE("domain events: encode then decode gives the event back, at the current version", "[events]") {
    const auto r = registry();
    boong::EventMetadata m;
    m.correlation_id = "flow-1";
    const auto data = boong::EventRegistry::encode(OrderPlaced{"o-1", 1250, "USD"}, m);
    CHECK(data.type == "OrderPlaced");
    CHECK(data.schema_version == 3);
    CHECK(boong::is_uuid(data.event_id));
    CHECK(data.metadata.correlation_id == "flow-1");
    CHECK(data.metadata.timestamp != boong::Clock::time_point{});
    const auto back = r.decode<OrderPlaced>(data);
    CHECK(back.order_id == "o-1");
    CHECK(back.amount_cents == 1250);
    CHECK(back.currency == "USD");
}

TEST_CASE("domain events: history written by older releases is upcast step by step", "[events]") {
    const auto r = registry();
    const auto v1 = r.decode<OrderPlaced>(stored("OrderPlaced", 1, {{"id", "o-7"}, {"amount", 12}}));
    CHECK(v1.order_id == "o-7");
    CHECK(v1.amount_cents == 1200);
    CHECK(v1.currency == "EUR");
    const auto v2 = r.decode<OrderPlaced>(stored("OrderPlaced", 2, {{"order_id", "o-8"}, {"amount", 3}}));
    CHECK(v2.order_id == "o-8");
    CHECK(v2.amount_cents == 300);
}

TEST_CASE("domain events: what a service cannot read is errc::unknown_event, with the reason", "[events]") {
    const auto r = registry();
    std::string why;
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("OrderPlaced", 4, {})); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("newer than this service knows (version 3)"));
    CHECK(code_of([&] { r.upcast(stored("Mystery", 1, {})); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("no such event"));
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("OrderPlaced", 3, {{"order_id", 5}})); }, &why) ==
          boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("does not decode"));
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("OrderPlaced", 1, {{"amount", 1}})); }, &why) ==
          boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("upcasting from version 1 failed"));
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("Other", 1, {{"x", 1}})); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("not a OrderPlaced"));
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("OrderPlaced", 0, {})); }) == boong::errc::unknown_event);

    boong::EventRegistry gap;
    gap.add<OrderPlaced>();
    gap.add_upcaster("OrderPlaced", 2, [](boong::json p) { return p; });
    CHECK(code_of([&] { gap.decode<OrderPlaced>(stored("OrderPlaced", 1, {})); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("no upcaster from version 1 to 2"));
}

TEST_CASE("domain events: a registry set up wrongly says so", "[events]") {
    boong::EventRegistry r;
    r.add<OrderPlaced>();
    CHECK(code_of([&] { r.add_upcaster("OrderPlaced", 3, [](boong::json p) { return p; }); }) ==
          boong::errc::invalid_config);
    CHECK(code_of([&] { r.add_upcaster("Nope", 1, [](boong::json p) { return p; }); }) == boong::errc::invalid_config);
    r.add_upcaster("OrderPlaced", 1, [](boong::json p) { return p; });
    CHECK(code_of([&] { r.add_upcaster("OrderPlaced", 1, [](boong::json p) { return p; }); }) ==
          boong::errc::invalid_config);
    CHECK(code_of([&] { r.add_upcaster("OrderPlaced", 2, boong::Upcaster{}); }) == boong::errc::invalid_config);
    CHECK(r.knows("OrderPlaced"));
    CHECK_FALSE(r.knows("Other"));
    CHECK(r.current_version("OrderPlaced") == 3);
}

TEST_CASE("domain events: payloads deeper than the limit, or with numbers no field can hold, are refused before "
          "anything walks them",
          "[events]") {
    auto r = registry();
    std::string why;
    // A payload as deep as a hostile message may be (built without recursion).
    boong::json deep = boong::json::array();
    for (int i = 0; i < 100000; ++i) {
        boong::json outer = boong::json::array();
        outer.push_back(std::move(deep));
        deep = std::move(outer);
    }
    auto hostile = stored("OrderPlaced", 3, {});
    hostile.payload = std::move(deep);  // moved, never copied: a copy would recurse 100,000 deep
    CHECK(code_of([&] { r.decode<OrderPlaced>(hostile); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("nests deeper than 128 levels"));
    r.set_max_json_depth(2);
    CHECK(code_of([&] { r.decode<Other>(stored("Other", 1, {{"x", boong::json::array({boong::json::array()})}})); },
                  &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("nests deeper than 2 levels"));
    CHECK_THROWS_AS(r.set_max_json_depth(0), boong::Error);
    // A float no integer field can hold (nlohmann would convert it without a check).
    const auto big = boong::json::parse(R"({"order_id": "1", "amount_cents": 1e30, "currency": "EUR"})");
    CHECK(code_of([&] { r.decode<OrderPlaced>(stored("OrderPlaced", 3, big)); }, &why) == boong::errc::unknown_event);
    CHECK_THAT(why, Catch::Contains("beyond what an event field can hold"));
    const auto fine = boong::json::parse(R"({"order_id": "1", "amount_cents": 12.0, "currency": "EUR"})");
    CHECK(r.decode<OrderPlaced>(stored("OrderPlaced", 3, fine)).amount_cents == 12);
}
