#include <boong/event.hpp>

#include <openssl/evp.h>

#include <array>
#include <vector>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ctime>
#include <random>

#include <sys/random.h>

namespace boong {
namespace {

// splitmix64's finalizer: a bijection on 64-bit values, so distinct counters
// give distinct outputs while looking random.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

constexpr char kHex[] = "0123456789abcdef";

// The two hex digits of every byte value, so that ids are written a byte at a time.
constexpr std::array<std::array<char, 2>, 256> kHexPairs = [] {
    std::array<std::array<char, 2>, 256> t{};
    for (std::size_t b = 0; b < 256; ++b) t[b] = {kHex[b >> 4], kHex[b & 0xF]};
    return t;
}();

// Writes the low `bytes` bytes of `v`, most significant first.
void put_hex(char*& out, std::uint64_t v, int bytes) noexcept {
    for (int i = bytes - 1; i >= 0; --i) {
        const auto& pair = kHexPairs[(v >> (i * 8)) & 0xFF];
        *out++ = pair[0];
        *out++ = pair[1];
    }
}

// The 128 bits hi:lo in the canonical 8-4-4-4-12 form.
std::string format_uuid(std::uint64_t hi, std::uint64_t lo) {
    std::string s(36, '-');
    char* out = s.data();
    put_hex(out, hi >> 32, 4);
    ++out;
    put_hex(out, (hi >> 16) & 0xFFFF, 2);
    ++out;
    put_hex(out, hi & 0xFFFF, 2);
    ++out;
    put_hex(out, lo >> 48, 2);
    ++out;
    put_hex(out, lo & 0xFFFFFFFFFFFFULL, 6);
    return s;
}

constexpr std::string_view kReservedMetadata[] = {"correlation_id", "causation_id", "timestamp"};

}  // namespace

// getrandom(2), not std::random_device: a generator is made for every
// encoded event, and random_device's setup runs CPUID, which in a virtual
// machine traps to the hypervisor (5% of bench_choreography's CPU).
IdGenerator::IdGenerator() {
    std::uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
        std::random_device rd;  // no getrandom (old kernel): the slow way
        seed = (std::uint64_t{rd()} << 32) ^ rd();
    }
    seed_ = seed;
}

std::string IdGenerator::next() { return next(Clock::now()); }

std::string IdGenerator::next(Clock::time_point now) {
    const std::uint64_t c = counter_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t x = mix64(seed_ + c);  // unique per generator: bijective in c
    const auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
    // Layout (RFC 9562 v7): 48-bit unix ms | ver 7 | 12 bits rand_a | var 0b10 | 62 bits rand_b.
    // rand_a takes 2 bits of x and 10 bits of the seed; rand_b the other 62 bits of x.
    const std::uint64_t rand_a = ((x & 0x3) << 10) | ((seed_ >> 54) & 0x3FF);
    const std::uint64_t hi = (ms << 16) | (0x7ULL << 12) | rand_a;
    const std::uint64_t lo = (0x2ULL << 62) | (x >> 2);

    return format_uuid(hi, lo);
}

std::string name_based_id(std::string_view namespace_id, std::string_view name) {
    if (!is_uuid(namespace_id))
        throw Error(errc::invalid_argument, "name_based_id: namespace '" + std::string(namespace_id) + "' is not a UUID");
    // SHA-1 of the namespace's 16 bytes followed by the name (RFC 9562, 5.5).
    unsigned char bytes[16];
    std::size_t n = 0;
    for (std::size_t i = 0; i < namespace_id.size(); i += 2) {
        if (namespace_id[i] == '-') ++i;
        auto nibble = [](char c) {
            return static_cast<unsigned char>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        };
        bytes[n++] = static_cast<unsigned char>(nibble(namespace_id[i]) << 4 | nibble(namespace_id[i + 1]));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), bytes, sizeof bytes) != 1 ||
        EVP_DigestUpdate(ctx.get(), name.data(), name.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length < 16)
        throw Error(errc::protocol_error, "name_based_id: SHA-1 failed (OpenSSL)");
    digest[6] = static_cast<unsigned char>((digest[6] & 0x0F) | 0x50);  // version 5
    digest[8] = static_cast<unsigned char>((digest[8] & 0x3F) | 0x80);  // variant 0b10
    std::uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; ++i) hi = hi << 8 | digest[i];
    for (int i = 8; i < 16; ++i) lo = lo << 8 | digest[i];
    return format_uuid(hi, lo);
}

bool is_uuid(std::string_view s) noexcept {
    if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return false;
    // The 32 digits side by side, checked eight at a time: each byte must be
    // ASCII and either 0-9 or, folded to lower case, a-f. Every byte stays
    // below 0x80 through the additions, so no carry crosses into the next.
    char digits[32];
    std::memcpy(digits, s.data(), 8);
    std::memcpy(digits + 8, s.data() + 9, 4);
    std::memcpy(digits + 12, s.data() + 14, 4);
    std::memcpy(digits + 16, s.data() + 19, 4);
    std::memcpy(digits + 20, s.data() + 24, 12);
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    bool ok = true;
    for (std::size_t at = 0; at < 32; at += 8) {
        std::uint64_t w;
        std::memcpy(&w, digits + at, 8);
        const std::uint64_t digit = (w + ones * (0x80 - '0')) & ~(w + ones * (0x7F - '9')) & highs;
        const std::uint64_t folded = w | (ones * 0x20);
        const std::uint64_t letter = (folded + ones * (0x80 - 'a')) & ~(folded + ones * (0x7F - 'f')) & highs;
        ok &= (w & highs) == 0 && (digit | letter) == highs;
    }
    return ok;
}

std::string format_timestamp(Clock::time_point t) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    auto secs = static_cast<std::time_t>(us / 1'000'000);
    auto frac = us % 1'000'000;
    if (frac < 0) {
        frac += 1'000'000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::array<char, 40> buf{};
    const int n = std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                static_cast<long long>(frac));
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

Clock::time_point parse_timestamp(std::string_view s) {
    auto fail = [&]() -> Error {
        return Error(errc::invalid_argument, "not an RFC 3339 UTC timestamp: '" + std::string(s) + "'");
    };
    // YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+00:00)
    auto num = [&](std::size_t pos, std::size_t len) {
        int v = 0;
        if (pos + len > s.size()) throw fail();
        for (std::size_t i = pos; i < pos + len; ++i)
            if (s[i] < '0' || s[i] > '9') throw fail();  // digits only: from_chars would take a sign
        auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, v);
        if (ec != std::errc{} || p != s.data() + pos + len) throw fail();
        return v;
    };
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        throw fail();
    std::tm tm{};
    tm.tm_year = num(0, 4) - 1900;
    tm.tm_mon = num(5, 2) - 1;
    tm.tm_mday = num(8, 2);
    tm.tm_hour = num(11, 2);
    tm.tm_min = num(14, 2);
    tm.tm_sec = num(17, 2);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        throw fail();
    std::size_t pos = 19;
    std::int64_t micros = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (digits < 6) micros = micros * 10 + (s[pos] - '0');
            ++digits;
            ++pos;
        }
        if (digits == 0) throw fail();
        for (int d = digits; d < 6; ++d) micros *= 10;
    }
    const std::string_view zone = s.substr(pos);
    if (zone != "Z" && zone != "z" && zone != "+00:00") throw fail();
    const std::time_t secs = timegm(&tm);
    // The clock counts nanoseconds in 64 bits: from 1677-09-21 to 2262-04-11.
    // (Four-digit years keep secs * 10^6 far from overflowing.)
    using std::chrono::microseconds;
    const std::int64_t total = static_cast<std::int64_t>(secs) * 1'000'000 + micros;
    if (total < std::chrono::duration_cast<microseconds>(Clock::duration::min()).count() ||
        total > std::chrono::duration_cast<microseconds>(Clock::duration::max()).count()) {
        throw Error(errc::invalid_argument,
                    "timestamp '" + std::string(s) + "' is outside the times this clock can hold (1677 to 2262)");
    }
    return Clock::time_point(std::chrono::duration_cast<Clock::duration>(microseconds(total)));
}

void to_json(json& j, const EventMetadata& m) {
    j = json::object();
    if (m.extra.is_object()) {
        for (const auto& [k, v] : m.extra.items()) j[k] = v;
    }
    // The typed fields win over anything of the same name in `extra`.
    for (auto key : kReservedMetadata) j.erase(std::string(key));
    if (!m.correlation_id.empty()) j["correlation_id"] = m.correlation_id;
    if (!m.causation_id.empty()) j["causation_id"] = m.causation_id;
    j["timestamp"] = format_timestamp(m.timestamp);
}

void from_json(const json& j, EventMetadata& m) {
    if (!j.is_object()) throw Error(errc::invalid_argument, "event metadata must be a JSON object");
    m = EventMetadata{};
    for (const auto& [k, v] : j.items()) {
        if (k == "correlation_id") {
            m.correlation_id = v.get<std::string>();
        } else if (k == "causation_id") {
            m.causation_id = v.get<std::string>();
        } else if (k == "timestamp") {
            m.timestamp = parse_timestamp(v.get<std::string>());
        } else {
            if (m.extra.is_null()) m.extra = json::object();
            m.extra[k] = v;
        }
    }
}

void to_json(json& j, const EventData& e) {
    j = json{{"event_id", e.event_id},
             {"type", e.type},
             {"schema_version", e.schema_version},
             {"payload", e.payload},
             {"metadata", e.metadata}};
}

void from_json(const json& j, EventData& e) {
    auto field = [&](const char* name) -> const json& {
        auto it = j.find(name);
        if (it == j.end()) throw Error(errc::invalid_argument, std::string("event envelope lacks '") + name + "'");
        return *it;
    };
    if (!j.is_object()) throw Error(errc::invalid_argument, "event envelope must be a JSON object");
    try {
        e.event_id = field("event_id").get<std::string>();
        e.type = field("type").get<std::string>();
        e.schema_version = field("schema_version").get<int>();
        e.payload = field("payload");
        auto it = j.find("metadata");
        e.metadata = it == j.end() ? EventMetadata{} : it->get<EventMetadata>();
    } catch (const json::exception& ex) {
        throw Error(errc::invalid_argument, std::string("malformed event envelope: ") + ex.what());
    }
}

void to_json(json& j, const RecordedEvent& e) {
    j = json(e.event);
    j["stream_id"] = e.stream_id;
    j["version"] = e.version;
    j["position"] = e.position;
    j["stored_at"] = format_timestamp(e.stored_at);
}

bool json_depth_exceeds(const json& j, int max_depth) noexcept {
    if (!j.is_structured()) return false;
    if (max_depth < 1) return true;
    // Depth-first, one frame per open container: where its walk stands.
    struct Frame {
        const json* node;
        std::size_t index = 0;                      // arrays
        json::object_t::const_iterator member{};    // objects
    };
    auto open = [](const json* node) {
        Frame f{node};
        if (node->is_object()) f.member = node->get_ref<const json::object_t&>().begin();
        return f;
    };
    std::vector<Frame> stack;
    try {
        stack.push_back(open(&j));
        while (!stack.empty()) {
            auto& top = stack.back();
            const json* child = nullptr;
            if (top.node->is_array()) {
                const auto& a = top.node->get_ref<const json::array_t&>();
                while (top.index < a.size() && !a[top.index].is_structured()) ++top.index;
                if (top.index < a.size()) child = &a[top.index++];
            } else {
                const auto end = top.node->get_ref<const json::object_t&>().end();
                while (top.member != end && !top.member->second.is_structured()) ++top.member;
                if (top.member != end) child = &(top.member++)->second;
            }
            if (!child) {
                stack.pop_back();
                continue;
            }
            if (static_cast<int>(stack.size()) >= max_depth) return true;
            stack.push_back(open(child));
        }
    } catch (...) {
        return true;  // no memory for the walk: say too deep rather than recurse
    }
    return false;
}

}  // namespace boong
