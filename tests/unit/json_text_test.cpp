// The JSON writer the Redis broker and the PostgreSQL store use on every
// publish and append must write exactly what nlohmann's dump() writes, and
// their reader must read exactly what json::parse reads.
#include "json_text.hpp"

#include <boong/error.hpp>
#include <boong/event.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using boong::json;

std::string written(const json& j) {
    std::string out;
    boong::detail::write_json(out, j);
    return out;
}

// Equal, types included: json's == takes 5 (unsigned) and 5 (signed) for
// the same, and 0.0 for -0.0.
bool same(const json& a, const json& b) {
    if (a.type() != b.type()) return false;
    switch (a.type()) {
    case json::value_t::object: {
        const auto& x = a.get_ref<const json::object_t&>();
        const auto& y = b.get_ref<const json::object_t&>();
        if (x.size() != y.size()) return false;
        for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j)
            if (i->first != j->first || !same(i->second, j->second)) return false;
        return true;
    }
    case json::value_t::array: {
        const auto& x = a.get_ref<const json::array_t&>();
        const auto& y = b.get_ref<const json::array_t&>();
        if (x.size() != y.size()) return false;
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!same(x[i], y[i])) return false;
        return true;
    }
    case json::value_t::number_float: {
        const double x = a.get<double>(), y = b.get<double>();
        return std::memcmp(&x, &y, sizeof x) == 0;
    }
    default: return a == b;
    }
}

// What json::parse makes of `text`: the value, or its error message.
struct Parsed {
    std::optional<json> value;
    std::string error;
};

template <class Parse>
Parsed parsed_by(Parse&& parse, const std::string& text) {
    Parsed p;
    try {
        p.value = parse(text);
    } catch (const std::exception& e) {
        p.error = e.what();
    }
    return p;
}

// read_json agrees with json::parse on `text`: the same value, or the same error.
void check_reads_as_parse(const std::string& text) {
    INFO("text: " << text);
    const Parsed want = parsed_by([](const std::string& t) { return json::parse(t); }, text);
    const Parsed got = parsed_by([](const std::string& t) { return boong::detail::read_json(t); }, text);
    REQUIRE(got.value.has_value() == want.value.has_value());
    if (want.value) {
        CHECK(same(*got.value, *want.value));
    } else {
        CHECK(got.error == want.error);
    }
}

// Random JSON: every type, strings with escapes and every UTF-8 length,
// integers at and past the 64-bit limits, doubles of every magnitude.
class RandomJson {
public:
    explicit RandomJson(std::uint64_t seed) : rng_(seed) {}

    json value(int depth) {
        switch (pick(depth < 4 ? 8 : 6)) {
        case 0: return nullptr;
        case 1: return pick(2) == 0;
        case 2: return integer();
        case 3: return real();
        case 4:
        case 5: return text();
        case 6: {
            json a = json::array();
            for (int n = pick(5); n > 0; --n) a.push_back(value(depth + 1));
            return a;
        }
        default: {
            json o = json::object();
            for (int n = pick(5); n > 0; --n) o[text()] = value(depth + 1);
            return o;
        }
        }
    }

private:
    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

    json integer() {
        switch (pick(5)) {
        case 0: return pick(100) - 50;
        case 1: return static_cast<std::int64_t>(rng_());
        case 2: return rng_();  // unsigned, often above INT64_MAX
        case 3: return std::numeric_limits<std::int64_t>::min();
        default: return std::numeric_limits<std::uint64_t>::max();
        }
    }

    json real() {
        if (pick(3) == 0) return (pick(20000) - 10000) / 64.0;
        for (;;) {
            const std::uint64_t bits = rng_();
            double d;
            std::memcpy(&d, &bits, sizeof d);
            if (std::isfinite(d)) return d;
        }
    }

    std::string text() {
        static const char* const pieces[] = {"a", "Z", "0", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t",
                                             "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                             "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
        std::string s;
        const int n = pick(4) == 0 ? pick(40) : pick(8);
        for (int i = 0; i < n; ++i) s += pieces[pick(static_cast<int>(std::size(pieces)))];
        return s;
    }

    std::mt19937_64 rng_;
};

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

TEST_CASE("json text: read_json reads random documents as json::parse does, types included", "[json]") {
    RandomJson random(20261126);
    for (int i = 0; i < 3000; ++i) {
        const json j = random.value(0);
        check_reads_as_parse(j.dump());
        check_reads_as_parse(j.dump(2));  // whitespace everywhere it may be
        check_reads_as_parse(j.dump(-1, ' ', true));  // escaped as \\uXXXX, surrogate pairs too
    }
}

TEST_CASE("json text: read_json gives what json::parse gives on odd and invalid text", "[json]") {
    const std::vector<std::string> texts{
        // Valid, at the edges.
        "0", "-0", "-0.0", "1E2", "1e-2", "1.5E+3", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "1e308", "4.9e-324", "2.2250738585072014e-308", "0.1", " \t\r\n[ ] ", "{}", "\"\"",
        R"("\u0000")", R"("\u00e9\u20AC\ud83d\ude00")", R"({"a":1,"a":2})", R"({"b":{"a":[]},"a":{}})",
        "\xef\xbb\xbf{\"bom\":true}",
        // Not JSON, or not what the reader reads itself.
        "", " ", "{", "}", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "01", "1.", ".5", "-",
        "+1", "1e", "1e+", "0x10", "tru", "nul", "truex", "[] x", "NaN", "Infinity", "1e400", "-1e400", "1e-400",
        "\"abc", R"("\x")", R"("\u12")", R"("\ud800")", R"("\udc00")", R"("\ud800\u0041")", "\"\x01\"",
        "\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"", "// c\n1",
        std::string("1\0", 2), std::string(128, '[') + std::string(128, ']'),  // as deep as it reads
    };
    for (const auto& text : texts) check_reads_as_parse(text);
}

TEST_CASE("json text: read_metadata reads what from_json reads, and refuses what it refuses", "[json]") {
    auto by_from_json = [](const std::string& text) {
        boong::EventMetadata m;
        from_json(json::parse(text), m);
        return m;
    };
    auto by_reader = [](const std::string& text) {
        boong::EventMetadata m;
        m.correlation_id = "left over";  // replaced, as from_json replaces it
        boong::detail::read_metadata(text, m);
        return m;
    };
    boong::EventMetadata written_one;
    written_one.correlation_id = "order-1";
    written_one.causation_id = "0190a3f2-0000-7000-8000-000000000001";
    written_one.timestamp = std::chrono::floor<std::chrono::microseconds>(boong::Clock::now());  // as written
    written_one.extra = json::parse(R"({"owner":"svc/x","lease_ms":30000,"trace":{"ids":[1,2]}})");
    const std::vector<std::string> good{
        json(written_one).dump(),
        // As PostgreSQL's jsonb prints it: shorter keys first, spaces.
        R"({"owner": "svc/x", "timestamp": "2025-01-01T00:00:00.000000Z", "causation_id": "c", "correlation_id": "k"})",
        R"({})", R"({"timestamp":"2025-01-01T00:00:00Z"})", R"({"x":null})", R"({"correlation_id":"a","correlation_id":"b"})",
        R"({"correlation_id":1,"correlation_id":"b"})", R"( {"causation_id":"\u00e9"} )",
    };
    for (const auto& text : good) {
        INFO(text);
        const auto want = by_from_json(text);
        const auto got = by_reader(text);
        CHECK(got.correlation_id == want.correlation_id);
        CHECK(got.causation_id == want.causation_id);
        CHECK(got.timestamp == want.timestamp);
        CHECK(same(got.extra, want.extra));
    }
    CHECK(by_reader(json(written_one).dump()) == written_one);
    const std::vector<std::string> bad{
        "[]", "\"x\"", "{", R"({"correlation_id":1})", R"({"causation_id":null})", R"({"timestamp":"yesterday"})",
        R"({"timestamp":"2025-01-01T00:00:00Z","correlation_id":[]})", R"({"correlation_id":"a","correlation_id":2})",
        R"({"a":1} x)",
    };
    for (const auto& text : bad) {
        INFO(text);
        std::string want, got;
        try {
            by_from_json(text);
        } catch (const std::exception& e) {
            want = e.what();
        }
        try {
            by_reader(text);
        } catch (const std::exception& e) {
            got = e.what();
        }
        CHECK_FALSE(want.empty());
        CHECK(got == want);
    }
}

namespace {

std::string nested(int depth, char open = '[', char close = ']') {
    return std::string(static_cast<std::size_t>(depth), open) + std::string(static_cast<std::size_t>(depth), close);
}

// A value nesting `depth` arrays, built without recursion.
json nested_value(int depth) {
    json j = json::array();
    for (int i = 1; i < depth; ++i) {
        json outer = json::array();
        outer.push_back(std::move(j));
        j = std::move(outer);
    }
    return j;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("json text: nesting deeper than the limit is refused while reading, before anything walks it", "[json]") {
    using boong::detail::read_json;
    // At the limit: read as json::parse reads it.
    CHECK(same(read_json(nested(boong::default_max_json_depth)), json::parse(nested(boong::default_max_json_depth))));
    const std::string too_deep = "JSON nests deeper than 128 levels";
    CHECK(error_of([] { read_json(nested(boong::default_max_json_depth + 1)); }) == too_deep);
    // The hostile entry of the issue: 100,000 levels, valid JSON; and the
    // unterminated form. Neither builds a value, nor crashes.
    CHECK(error_of([] { read_json(nested(100000)); }) == too_deep);
    CHECK(error_of([] { read_json(std::string(100000, '[')); }) == too_deep);
    CHECK(error_of([] { read_json(R"({"a":)" + nested(200) + "}"); }) == too_deep);
    // Text the fast reader leaves to json::parse (a BOM) is held to the limit there too.
    CHECK(error_of([] { read_json("\xef\xbb\xbf" + nested(100000)); }) == too_deep);
    CHECK(same(read_json("\xef\xbb\xbf" + nested(5)), json::parse("\xef\xbb\xbf" + nested(5))));
    // A limit of one's own.
    CHECK(same(read_json(R"({"a":[1]})", 2), json::parse(R"({"a":[1]})")));
    CHECK(error_of([] { read_json(R"({"a":[[1]]})", 2); }) == "JSON nests deeper than 2 levels");
    // Metadata: the object itself is level 1.
    boong::EventMetadata m;
    CHECK(error_of([&] { boong::detail::read_metadata(R"({"x":)" + nested(128) + "}", m); }) == too_deep);
    CHECK(error_of([&] { boong::detail::read_metadata(R"({"x":)" + nested(127) + "}", m); }).empty());
    CHECK(m.extra.at("x").is_array());
}

TEST_CASE("json text: writing refuses values nesting deeper than the limit", "[json]") {
    std::string out;
    CHECK_NOTHROW(boong::detail::write_json(out, nested_value(boong::default_max_json_depth)));
    CHECK(out == nested(boong::default_max_json_depth));
    out.clear();
    try {
        boong::detail::write_json(out, nested_value(100000));
        FAIL("a value 100,000 levels deep was written");
    } catch (const boong::Error& e) {
        CHECK(e.code() == boong::errc::invalid_argument);
        CHECK(std::string(e.what()) == "JSON nests deeper than 128 levels");
    }
    boong::EventMetadata m;
    m.extra = json{{"x", nested_value(128)}};
    CHECK_THROWS_AS(boong::detail::write_metadata(out, m), boong::Error);
}

TEST_CASE("json depth: json_depth_exceeds measures without recursion", "[json]") {
    CHECK_FALSE(boong::json_depth_exceeds(json(1), 0 + 1));
    CHECK_FALSE(boong::json_depth_exceeds(json::array(), 1));
    CHECK(boong::json_depth_exceeds(json::array(), 0));
    CHECK_FALSE(boong::json_depth_exceeds(json::parse(R"({"a":[1,{"b":2}],"c":{}})"), 3));
    CHECK(boong::json_depth_exceeds(json::parse(R"({"a":[1,{"b":2}],"c":{}})"), 2));
    // Wide as well as deep: a million-element array of objects is depth 2.
    json wide = json::array();
    for (int i = 0; i < 1000; ++i) wide.push_back(json{{"k", i}});
    CHECK_FALSE(boong::json_depth_exceeds(wide, 2));
    CHECK(boong::json_depth_exceeds(wide, 1));
    const json deep = nested_value(1000000);
    CHECK(boong::json_depth_exceeds(deep, boong::default_max_json_depth));
    CHECK_FALSE(boong::json_depth_exceeds(deep, 1000000));
}
