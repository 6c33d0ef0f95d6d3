// The JSON writer the Redis broker and the PostgreSQL store use on every
// publish and append must write exactly what nlohmann's dump() writes.
#include "json_text.hpp"

#include <boong/error.hpp>
#include <boong/event.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

namespace {

std::string written(const boong::json& j) {
    std::string out;
    boong::detail::write_json(out, j);
    return out;
}

}  // namespace

TEST_CASE("json text: values are written as dump() writes them", "[json]") {
    using boong::json;
    std::vector<json> values{
        nullptr, true, false, 0, -1, 42, std::numeric_limits<std::int64_t>::min(),
        std::numeric_limits<std::uint64_t>::max(), 1.5, -0.25, 1e300, 0.1,
        "", "plain", "quote \" backslash \\ slash / tab \t newline \n return \r",
        std::string("control \x01\x1f and DEL \x7f", 21), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        std::string(3000, 'x') + "\"" + std::string(3000, 'y'),  // spills past the stack buffer
        json::array(), json::object(), json::array({1, "two", json::object({{"three", 3}})}),
        json::parse(R"({"b":{"nested":[1,2,{"deep":"er"}]},"a":null,"emoji":"\ud83d\ude00"})"),
    };
    for (const auto& v : values) CHECK(written(v) == v.dump());
    // Every length around the word-at-a-time scan, with something to escape at each position.
    for (std::size_t n = 0; n < 40; ++n) {
        for (std::size_t at = 0; at <= n; ++at) {
            std::string s(n, 'a');
            if (at < n) s[at] = '"';
            CHECK(written(json(s)) == json(s).dump());
        }
    }
}

TEST_CASE("json text: strings that are not UTF-8 are refused with invalid_argument", "[json]") {
    for (const std::string& bad : {std::string("\xff"), std::string("ok \xc3"), std::string("\xed\xa0\x80"),
                                  std::string(20, 'a') + "\xc0\xaf", std::string("\xf4\x90\x80\x80")}) {
        std::string out;
        try {
            boong::detail::write_json(out, boong::json(bad));
            FAIL("written: " + out);
        } catch (const boong::Error& e) {
            CHECK(e.code() == boong::errc::invalid_argument);
        }
    }
}

TEST_CASE("json text: metadata is written as json(metadata).dump()", "[json]") {
    boong::EventMetadata m;
    m.timestamp = boong::Clock::now();
    std::string out;
    boong::detail::write_metadata(out, m);
    CHECK(out == boong::json(m).dump());
    m.correlation_id = "order-1";
    m.causation_id = "0190a3f2-0000-7000-8000-000000000001";
    m.extra = boong::json::parse(R"({"a":1,"owner":"svc/x","zzz":[true],"correlation_id":"shadowed"})");
    out.clear();
    boong::detail::write_metadata(out, m);
    CHECK(out == boong::json(m).dump());
}
