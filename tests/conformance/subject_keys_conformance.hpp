// The SubjectKeyStore contract (boong/subject_keys.hpp), as a suite any
// model runs.
//
// A test file defines BOONG_SUBJECT_KEYS_FIXTURES (fixture types,
// comma-separated) and includes this header. A fixture has: a default
// constructor; `boost::asio::io_context& ioc()`; `auto& keys()`; and
// `std::string unique(std::string_view base)`.
#pragma once

#include "support/async.hpp"
#include "support/events.hpp"

#include <boong/subject_keys.hpp>

#include <catch2/catch.hpp>

TEMPLATE_TEST_CASE("subject keys conformance: a subject's key is made once, rotated, and shredded for good",
                   "[encryption][conformance]", BOONG_SUBJECT_KEYS_FIXTURES) {
    using namespace boong;
    using boong::test::code_of;
    using boong::test::run;
    namespace asio = boost::asio;
    TestType fx;
    auto& keys = fx.keys();
    const std::string ada = fx.unique("ada");
    const std::string bob = fx.unique("bob");
    auto current = [&](const std::string& s) {
        return run(fx.ioc(), [&] { return keys.async_current(s, asio::use_awaitable); });
    };
    auto find = [&](const std::string& s, std::int32_t v) {
        return run(fx.ioc(), [&] { return keys.async_find(s, v, asio::use_awaitable); });
    };
    auto rotate = [&](const std::string& s) {
        return run(fx.ioc(), [&] { return keys.async_rotate(s, asio::use_awaitable); });
    };
    auto shred = [&](const std::string& s) {
        return run(fx.ioc(), [&] { return keys.async_shred(s, asio::use_awaitable); });
    };

    CHECK(find(ada, 1).state == KeyLookup::State::unknown);  // never made
    const SubjectKey first = current(ada);
    CHECK(first.subject == ada);
    CHECK(first.version == 1);
    CHECK(first.secret.size() == 32);
    CHECK(current(ada).secret == first.secret);  // the same key, not a new one
    const auto found = find(ada, 1);
    REQUIRE(found.state == KeyLookup::State::found);
    CHECK(found.key->secret == first.secret);
    CHECK(find(ada, 2).state == KeyLookup::State::unknown);
    CHECK(find(ada, 0).state == KeyLookup::State::unknown);

    // Rotation: a new newest version; the old one still opens old events.
    const SubjectKey second = rotate(ada);
    CHECK(second.version == 2);
    CHECK(second.secret != first.secret);
    CHECK(current(ada).version == 2);
    CHECK(find(ada, 1).key->secret == first.secret);
    CHECK(find(ada, 2).key->secret == second.secret);

    // A key per subject.
    const SubjectKey other = current(bob);
    CHECK(other.secret != first.secret);

    // Shredding takes every version, for good; others keep theirs.
    CHECK(shred(ada) == 2);
    CHECK(find(ada, 1).state == KeyLookup::State::shredded);
    CHECK(find(ada, 2).state == KeyLookup::State::shredded);
    CHECK(code_of([&] { current(ada); }) == errc::rejected);
    CHECK(code_of([&] { rotate(ada); }) == errc::rejected);
    CHECK(shred(ada) == 0);
    CHECK(find(bob, 1).key->secret == other.secret);

    // A subject shredded before it had a key stays shredded.
    const std::string never = fx.unique("never");
    CHECK(shred(never) == 0);
    CHECK(code_of([&] { current(never); }) == errc::rejected);
    CHECK(find(never, 1).state == KeyLookup::State::shredded);

    // What is not a subject.
    CHECK(code_of([&] { current(""); }) == errc::invalid_argument);
    CHECK(code_of([&] { current(std::string(257, 's')); }) == errc::invalid_argument);
    CHECK(code_of([&] { find("a\nb", 1); }) == errc::invalid_argument);
    CHECK(code_of([&] { shred(std::string("\xff\xfe")); }) == errc::invalid_argument);

    // End to end: what a shredded subject's events read as.
    const SensitiveFields marks{.subject = "/customer", .fields = {"/email"}};
    const json stored = encrypt_fields(json{{"customer", bob}, {"email", "bob@example.org"}}, marks, current(bob));
    auto finder = [&](std::string_view s, std::int32_t v) { return find(std::string(s), v); };
    CHECK(decrypt_fields(stored, finder)["email"] == "bob@example.org");
    CHECK(keys_needed(stored) == std::vector<std::pair<std::string, std::int32_t>>{{bob, 1}});
    shred(bob);
    CHECK(decrypt_fields(stored, finder)["email"]["boong_redacted"] == "the subject's key was deleted");
}
