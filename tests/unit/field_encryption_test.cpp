// Field encryption with crypto-shredding, without I/O: round trips, what a
// shredded, unknown or wrong key gives, tampering, rotation, and the master
// key that wraps subject keys (include/boong/field_encryption.hpp).
#include <boong/error.hpp>
#include <boong/field_encryption.hpp>

#include "support/events.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <unistd.h>

namespace {

using boong::json;
using boong::KeyLookup;
using boong::SubjectKey;
using boong::test::message_of;

const boong::SensitiveFields kCustomer{.subject = "/customer_id",
                                       .fields = {"/email", "/shipping/address", "/phones", "/age"}};

json registered() {
    return {{"customer_id", "c-42"},
            {"email", "ada@example.org"},
            {"shipping", {{"address", "12 Crescent Lane"}, {"country", "GB"}}},
            {"phones", {"+44 20 7946 0000", "+44 20 7946 0001"}},
            {"age", 36},
            {"plan", "gold"}};
}

// Keys by (subject, version), and the subjects shredded: what a key store
// answers.
struct Keys {
    std::map<std::pair<std::string, std::int32_t>, SubjectKey> known;
    std::set<std::string> shredded;

    const SubjectKey& add(const std::string& subject, std::int32_t version) {
        return known.insert_or_assign({subject, version}, SubjectKey::generate(subject, version)).first->second;
    }
    boong::FindSubjectKey finder() const {
        return [this](std::string_view subject, std::int32_t version) {
            if (shredded.contains(std::string(subject))) return KeyLookup::shredded();
            const auto it = known.find({std::string(subject), version});
            return it == known.end() ? KeyLookup::unknown() : KeyLookup::found(it->second);
        };
    }
};

// No plaintext of the sensitive fields anywhere in `text` (each has a
// character base64 never writes, so a ciphertext cannot match by chance).
void check_no_plaintext(const std::string& text) {
    for (const char* secret : {"ada@example.org", "12 Crescent Lane", "+44 20 7946 0000", "\"age\":36"}) {
        INFO(secret);
        CHECK(text.find(secret) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("field encryption: marked fields are sealed, the rest stays, and the key opens them again", "[encryption]") {
    Keys keys;
    const auto& key = keys.add("c-42", 1);
    const json sealed = boong::encrypt_fields(registered(), kCustomer, key);
    check_no_plaintext(sealed.dump());
    CHECK(sealed["customer_id"] == "c-42");
    CHECK(sealed["plan"] == "gold");
    CHECK(sealed["shipping"]["country"] == "GB");
    for (const char* p : {"/email", "/shipping/address", "/phones", "/age"}) {
        const auto& v = sealed.at(json::json_pointer(p));
        INFO(p << ": " << v.dump());
        CHECK(v["boong_encrypted"] == 1);
        CHECK(v["subject"] == "c-42");
        CHECK(v["key_version"] == 1);
    }
    CHECK(boong::has_protected_fields(sealed));
    CHECK_FALSE(boong::has_protected_fields(registered()));
    CHECK(boong::decrypt_fields(sealed, keys.finder()) == registered());
    // A fresh nonce each time: the same value never gives the same ciphertext.
    const json again = boong::encrypt_fields(registered(), kCustomer, key);
    CHECK(again["email"]["ciphertext"] != sealed["email"]["ciphertext"]);
    // Absent fields stay absent; an integer subject is its decimal text.
    const json partial = boong::encrypt_fields(json{{"customer_id", "c-42"}, {"plan", "basic"}}, kCustomer, key);
    CHECK(partial == json{{"customer_id", "c-42"}, {"plan", "basic"}});
    CHECK(boong::subject_of(json{{"customer_id", 42}}, kCustomer) == "42");
}

TEST_CASE("field encryption: deleting the subject's key redacts its fields, and only its", "[encryption]") {
    Keys keys;
    const json ada = boong::encrypt_fields(registered(), kCustomer, keys.add("c-42", 1));
    json bob_payload = registered();
    bob_payload["customer_id"] = "c-7";
    const json bob = boong::encrypt_fields(bob_payload, kCustomer, keys.add("c-7", 1));
    keys.shredded.insert("c-42");
    const json shown = boong::decrypt_fields(ada, keys.finder());
    check_no_plaintext(shown.dump());
    CHECK(shown["email"] == json{{"boong_redacted", "the subject's key was deleted"}, {"subject", "c-42"}});
    CHECK(shown["shipping"]["address"]["boong_redacted"] == "the subject's key was deleted");
    CHECK(shown["shipping"]["country"] == "GB");
    CHECK(shown["plan"] == "gold");
    CHECK(boong::has_protected_fields(shown));
    CHECK(boong::decrypt_fields(bob, keys.finder()) == bob_payload);
}

TEST_CASE("field encryption: an unknown key, a wrong key, or a changed ciphertext is an error, never plaintext",
          "[encryption]") {
    Keys keys;
    const json sealed = boong::encrypt_fields(registered(), kCustomer, keys.add("c-42", 1));
    auto failure = [&](const json& payload, const Keys& with) {
        std::string message;
        try {
            (void)boong::decrypt_fields(payload, with.finder());
        } catch (const boong::Error& e) {
            CHECK(e.code() == boong::errc::unknown_event);
            message = e.what();
        }
        check_no_plaintext(message);
        return message;
    };
    SECTION("no such key (a key store that never had it)") {
        CHECK_THAT(failure(sealed, Keys{}), Catch::Contains("cannot read /") && Catch::Contains("'c-42'") &&
                                                Catch::Contains("key version 1") && Catch::Contains("no such key"));
    }
    SECTION("another key under the same name") {
        Keys wrong;
        wrong.add("c-42", 1);
        CHECK_THAT(failure(sealed, wrong), Catch::Contains("does not open"));
    }
    SECTION("a ciphertext moved to another field") {
        json moved = sealed;
        moved["age"] = sealed["email"];
        CHECK_THAT(failure(moved, keys), Catch::Contains("cannot read /age") && Catch::Contains("does not open"));
    }
    SECTION("a ciphertext claimed for another subject") {
        keys.add("c-7", 1);
        json other = sealed;
        other["email"]["subject"] = "c-7";
        CHECK_THAT(failure(other, keys), Catch::Contains("does not open"));
    }
    SECTION("a changed byte") {
        json changed = sealed;
        std::string text = changed["email"]["ciphertext"];
        text[0] = text[0] == 'A' ? 'B' : 'A';
        changed["email"]["ciphertext"] = text;
        CHECK_THAT(failure(changed, keys), Catch::Contains("does not open"));
    }
    SECTION("a malformed encrypted value") {
        json bad = sealed;
        bad["email"].erase("nonce");
        CHECK_THAT(failure(bad, keys), Catch::Contains("/email is a malformed encrypted value"));
        bad = sealed;
        bad["email"]["nonce"] = "not base64!";
        CHECK_THAT(failure(bad, keys), Catch::Contains("not base64"));
    }
}

TEST_CASE("field encryption: after a rotation, old events open with the old version, new ones use the new",
          "[encryption]") {
    Keys keys;
    const json old_event = boong::encrypt_fields(registered(), kCustomer, keys.add("c-42", 1));
    const json new_event = boong::encrypt_fields(registered(), kCustomer, keys.add("c-42", 2));
    CHECK(old_event["email"]["key_version"] == 1);
    CHECK(new_event["email"]["key_version"] == 2);
    CHECK(boong::decrypt_fields(old_event, keys.finder()) == registered());
    CHECK(boong::decrypt_fields(new_event, keys.finder()) == registered());
    keys.shredded.insert("c-42");  // shredding takes every version
    CHECK(boong::decrypt_fields(old_event, keys.finder())["email"].contains("boong_redacted"));
    CHECK(boong::decrypt_fields(new_event, keys.finder())["email"].contains("boong_redacted"));
}

TEST_CASE("field encryption: what is refused when encrypting", "[encryption]") {
    Keys keys;
    const auto& key = keys.add("c-42", 1);
    auto code = [](auto&& f) { return boong::test::code_of(f); };
    CHECK(code([&] { (void)boong::encrypt_fields(json{{"plan", "gold"}}, kCustomer, key); }) ==
          boong::errc::invalid_argument);
    CHECK(code([&] { (void)boong::encrypt_fields(json::array(), kCustomer, key); }) == boong::errc::invalid_argument);
    json other = registered();
    other["customer_id"] = "c-7";
    CHECK_THAT(message_of([&] { (void)boong::encrypt_fields(other, kCustomer, key); }),
               Catch::Contains("subject is 'c-7'"));
    const json sealed = boong::encrypt_fields(registered(), kCustomer, key);
    CHECK_THAT(message_of([&] { (void)boong::encrypt_fields(sealed, kCustomer, key); }),
               Catch::Contains("encrypted already"));
    CHECK(code([&] { (void)boong::encrypt_fields(registered(), kCustomer, SubjectKey("c-42", 1, "short")); }) ==
          boong::errc::invalid_argument);
}

TEST_CASE("field encryption: a policy refuses marks it could not honour", "[encryption]") {
    boong::FieldPolicy policy;
    policy.mark("CustomerRegistered", kCustomer);
    REQUIRE(policy.find("CustomerRegistered") != nullptr);
    CHECK(policy.find("OrderPlaced") == nullptr);
    auto refused = [&](std::string type, boong::SensitiveFields f) {
        return message_of([&] { policy.mark(std::move(type), std::move(f)); });
    };
    CHECK_THAT(refused("CustomerRegistered", kCustomer), Catch::Contains("marked twice"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {}}), Catch::Contains("no field"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {"email"}}), Catch::Contains("not a JSON pointer"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {""}}), Catch::Contains("root"));
    CHECK_THAT(refused("A", {.subject = "", .fields = {"/email"}}), Catch::Contains("no subject"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {"/id"}}), Catch::Contains("must stay readable"));
    CHECK_THAT(refused("A", {.subject = "/who/id", .fields = {"/who"}}), Catch::Contains("must stay readable"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {"/a", "/a/b"}}), Catch::Contains("inside /a"));
    CHECK_THAT(refused("A", {.subject = "/id", .fields = {"/a", "/a"}}), Catch::Contains("listed twice"));
    CHECK(policy.find("A") == nullptr);
}

TEST_CASE("field encryption: the master key wraps subject keys, bound to their subject and version", "[encryption]") {
    const auto master = boong::MasterKey::from_hex(std::string(64, 'a'));
    const auto key = SubjectKey::generate("c-42", 3);
    const std::string wrapped = master.wrap(key);
    CHECK(wrapped.find(key.secret) == std::string::npos);
    const auto back = master.unwrap("c-42", 3, wrapped);
    CHECK(back.secret == key.secret);
    CHECK(back.subject == "c-42");
    CHECK(back.version == 3);
    const auto other = boong::MasterKey::from_hex(std::string(64, 'b'));
    CHECK_THAT(message_of([&] { (void)other.unwrap("c-42", 3, wrapped); }),
               Catch::Contains("another master key wrapped it"));
    CHECK(boong::test::code_of([&] { (void)master.unwrap("c-7", 3, wrapped); }) == boong::errc::invalid_config);
    CHECK(boong::test::code_of([&] { (void)master.unwrap("c-42", 4, wrapped); }) == boong::errc::invalid_config);
    CHECK(boong::test::code_of([&] { (void)master.unwrap("c-42", 3, "not base64"); }) ==
          boong::errc::invalid_config);

    // Where it comes from: never echoed back in an error.
    CHECK_THAT(message_of([] { (void)boong::MasterKey::from_hex("abcd"); }), Catch::Contains("32"));
    ::setenv("BOONG_TEST_MASTER_KEY", "zz-not-hex-but-secret", 1);
    const auto env_error = message_of([] { (void)boong::MasterKey::from_env("BOONG_TEST_MASTER_KEY"); });
    CHECK_THAT(env_error, Catch::Contains("BOONG_TEST_MASTER_KEY") && !Catch::Contains("zz-not-hex-but-secret"));
    ::setenv("BOONG_TEST_MASTER_KEY", std::string(64, 'a').c_str(), 1);
    CHECK(boong::MasterKey::from_env("BOONG_TEST_MASTER_KEY").unwrap("c-42", 3, wrapped).secret == key.secret);
    ::unsetenv("BOONG_TEST_MASTER_KEY");
    CHECK_THAT(message_of([] { (void)boong::MasterKey::from_env("BOONG_TEST_MASTER_KEY"); }),
               Catch::Contains("is not set"));

    const auto file = std::filesystem::temp_directory_path() / ("boong-master-" + std::to_string(::getpid()));
    std::ofstream(file) << std::string(64, 'a') << "\n";
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                           std::filesystem::perms::group_read);
    CHECK_THAT(message_of([&] { (void)boong::MasterKey::from_file(file); }), Catch::Contains("chmod 600"));
    std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    CHECK(boong::MasterKey::from_file(file).unwrap("c-42", 3, wrapped).secret == key.secret);
    std::filesystem::remove(file);
}
