#include <boong/event.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <thread>

using namespace boong;

TEST_CASE("ids are unique version-7 UUIDs, also across threads", "[event][id]") {
    IdGenerator ids;
    std::set<std::string> seen;
    for (int i = 0; i < 100000; ++i) {
        auto id = ids.next();
        REQUIRE(is_uuid(id));
        REQUIRE(id[14] == '7');                                  // version
        REQUIRE(std::string("89ab").find(id[19]) != std::string::npos);  // RFC variant
        REQUIRE(seen.insert(id).second);
    }
    std::vector<std::string> a, b;
    std::thread t1([&] { for (int i = 0; i < 20000; ++i) a.push_back(ids.next()); });
    std::thread t2([&] { for (int i = 0; i < 20000; ++i) b.push_back(ids.next()); });
    t1.join();
    t2.join();
    for (auto& id : a) REQUIRE(seen.insert(id).second);
    for (auto& id : b) REQUIRE(seen.insert(id).second);
    // Two generators (two processes) do not collide either.
    IdGenerator other;
    for (int i = 0; i < 10000; ++i) REQUIRE(seen.insert(other.next()).second);
}

TEST_CASE("is_uuid accepts only the canonical form", "[event][id]") {
    CHECK(is_uuid("01890a5d-ac96-774b-bcce-b302099a8057"));
    CHECK(is_uuid("01890A5D-AC96-774B-BCCE-B302099A8057"));
    CHECK_FALSE(is_uuid(""));
    CHECK_FALSE(is_uuid("01890a5d-ac96-774b-bcce-b302099a805"));
    CHECK_FALSE(is_uuid("01890a5d_ac96-774b-bcce-b302099a8057"));
    CHECK_FALSE(is_uuid("01890a5d-ac96-774b-bcce-b302099a805g"));
}

TEST_CASE("timestamps round-trip through RFC 3339 with microseconds", "[event][time]") {
    const auto t = Clock::time_point(std::chrono::microseconds(1'764'133'200'123'456LL));
    const auto text = format_timestamp(t);
    CHECK(text == "2025-11-26T05:00:00.123456Z");
    CHECK(parse_timestamp(text) == t);
    CHECK(parse_timestamp("2025-11-26T05:00:00Z") == Clock::time_point(std::chrono::seconds(1'764'133'200LL)));
    CHECK(parse_timestamp("2025-11-26T05:00:00.5+00:00") ==
          Clock::time_point(std::chrono::milliseconds(1'764'133'200'500LL)));
    for (auto bad : {"", "yesterday", "2025-11-26", "2025-13-26T05:00:00Z", "2025-11-26T05:00:00+02:00",
                     "2025-11-26T05:00:00.Z"}) {
        CHECK_THROWS_AS(parse_timestamp(bad), Error);
    }
}

TEST_CASE("events serialize to the envelope and back", "[event][json]") {
    EventData e;
    e.event_id = IdGenerator().next();
    e.type = "OrderCreated";
    e.schema_version = 2;
    e.payload = {{"order_id", "o-1"}, {"items", {1, 2, 3}}};
    e.metadata.correlation_id = "c";
    e.metadata.causation_id = "k";
    e.metadata.timestamp = Clock::time_point(std::chrono::microseconds(1'764'133'200'000'001LL));
    e.metadata.extra = {{"tenant", "acme"}, {"timestamp", "ignored: the typed field wins"}};

    const json j = e;
    CHECK(j.at("metadata").at("tenant") == "acme");
    CHECK(j.at("metadata").at("timestamp") == "2025-11-26T05:00:00.000001Z");
    auto back = j.get<EventData>();
    CHECK(back.event_id == e.event_id);
    CHECK(back.type == e.type);
    CHECK(back.schema_version == 2);
    CHECK(back.payload == e.payload);
    CHECK(back.metadata.timestamp == e.metadata.timestamp);
    CHECK(back.metadata.extra == json{{"tenant", "acme"}});

    CHECK_THROWS_WITH(json::parse(R"({"type":"X"})").get<EventData>(), Catch::Contains("event_id"));
    CHECK_THROWS_WITH(json::parse(R"({"event_id":"x","type":"X","schema_version":"one","payload":{}})").get<EventData>(),
                      Catch::Contains("malformed event envelope"));
    CHECK_THROWS_AS(json::parse("[]").get<EventData>(), Error);
}

TEST_CASE("name_based_id: RFC 9562 version-5 UUIDs, the same for the same name", "[event][ids]") {
    // RFC 9562, appendix A.4: "www.example.com" in the DNS namespace.
    const std::string dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    CHECK(boong::name_based_id(dns, "www.example.com") == "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    CHECK(boong::name_based_id("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "www.example.com") ==
          "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    const auto a = boong::name_based_id(dns, "order key 1");
    CHECK(boong::is_uuid(a));
    CHECK(a == boong::name_based_id(dns, "order key 1"));
    CHECK(a != boong::name_based_id(dns, "order key 2"));
    CHECK(a != boong::name_based_id("6ba7b811-9dad-11d1-80b4-00c04fd430c8", "order key 1"));
    CHECK(boong::name_based_id(dns, std::string("a\0b", 3)) != boong::name_based_id(dns, "a"));
    CHECK_THROWS_AS(boong::name_based_id("not-a-uuid", "x"), boong::Error);
}

TEST_CASE("parse_timestamp: years the clock cannot hold, and signs in the digits, are refused", "[event][timestamp]") {
    // Found by fuzz_json_reader: year 4052 overflowed the nanosecond clock.
    CHECK_THROWS_WITH(boong::parse_timestamp("4052-01-02T03:04:05.000006Z"), Catch::Contains("1677 to 2262"));
    CHECK_THROWS_WITH(boong::parse_timestamp("1000-01-02T03:04:05Z"), Catch::Contains("1677 to 2262"));
    CHECK_THROWS_AS(boong::parse_timestamp("2262-04-11T23:47:16.854776Z"), boong::Error);  // a microsecond past the end
    // The clock's own ends come back (to the microsecond).
    for (const auto t : {boong::Clock::time_point::min(), boong::Clock::time_point::max()}) {
        const auto back = boong::parse_timestamp(boong::format_timestamp(t));
        CHECK(std::chrono::abs(back - t) < std::chrono::microseconds(1));
    }
    CHECK_THROWS_AS(boong::parse_timestamp("-999-01-02T03:04:05Z"), boong::Error);
    CHECK_THROWS_AS(boong::parse_timestamp("2024-+1-02T03:04:05Z"), boong::Error);
    CHECK(boong::format_timestamp(boong::parse_timestamp("2261-12-31T23:59:59.999999Z")) == "2261-12-31T23:59:59.999999Z");
    CHECK(boong::format_timestamp(boong::parse_timestamp("1700-01-01T00:00:00Z")) == "1700-01-01T00:00:00.000000Z");
}
