#include <boong/error.hpp>
#include <boong/signing.hpp>

#include "secrets.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <stdexcept>

namespace boong {

namespace {

constexpr std::size_t kMinSecret = 32;
constexpr std::size_t kMaxKeyId = 64;
constexpr std::size_t kMacBytes = 32;

[[noreturn]] void refuse(const std::string& why) { throw Error(errc::invalid_config, "signing keys: " + why); }

bool valid_key_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxKeyId) return false;
    for (const char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// What is signed: every field a consumer acts on, in a fixed order, as
// compact JSON (nlohmann writes object keys sorted, so the text does not
// depend on the order a broker's envelope kept them in). The metadata's
// extra goes in without the signature and without what a broker adds when it
// dead-letters.
std::string signed_text(const EventData& e, std::string_view topic) {
    json extra = e.metadata.extra.is_object() ? e.metadata.extra : json::object();
    extra.erase("signature");
    extra.erase("dead_letter");
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(e.metadata.timestamp.time_since_epoch()).count();
    const json doc = json::array({"boong-signed-v1", topic, e.event_id, e.type, e.schema_version, e.payload,
                                  e.metadata.correlation_id, e.metadata.causation_id, micros, extra});
    return doc.dump(-1, ' ', false, json::error_handler_t::strict);
}

}  // namespace

KeyRing::KeyRing(std::vector<SigningKey> keys, std::string sign_with) : sign_with_(std::move(sign_with)) {
    if (keys.empty()) refuse("no key");
    for (auto& k : keys) {
        if (!valid_key_id(k.id)) {
            refuse("key id '" + k.id.substr(0, kMaxKeyId) + "' is not 1.." + std::to_string(kMaxKeyId) +
                   " of [A-Za-z0-9._-]");
        }
        if (k.secret.size() < kMinSecret) {
            refuse("the secret of key '" + k.id + "' has " + std::to_string(k.secret.size()) +
                   " bytes; at least " + std::to_string(kMinSecret) + " are needed");
        }
        const std::string id = k.id;
        if (!secrets_.emplace(id, std::move(k.secret)).second) refuse("key '" + id + "' is listed twice");
        OPENSSL_cleanse(k.secret.data(), k.secret.size());
    }
    if (!sign_with_.empty() && !has(sign_with_)) {
        refuse("sign_with names key '" + sign_with_ + "', which is not listed");
    }
}

KeyRing::~KeyRing() {
    for (auto& [id, secret] : secrets_) OPENSSL_cleanse(secret.data(), secret.size());
}

KeyRing KeyRing::from_json(const json& document) {
    if (!document.is_object()) refuse("expected an object with \"keys\" and \"sign_with\"");
    const auto keys = document.find("keys");
    if (keys == document.end() || !keys->is_array()) refuse("\"keys\" must be an array of {\"id\", \"secret_hex\"}");
    std::string sign_with;
    if (const auto s = document.find("sign_with"); s != document.end()) {
        if (!s->is_string()) refuse("\"sign_with\" must be a key id");
        sign_with = s->get<std::string>();
    }
    std::vector<SigningKey> out;
    for (const auto& k : *keys) {
        const auto id = k.find("id");
        const auto hex = k.find("secret_hex");
        if (!k.is_object() || id == k.end() || !id->is_string() || hex == k.end() || !hex->is_string()) {
            refuse("each key must be {\"id\": string, \"secret_hex\": string}");
        }
        auto secret = secrets::from_hex(hex->get_ref<const std::string&>());
        if (!secret) refuse("the secret of key '" + id->get<std::string>() + "' is not hex");
        out.push_back(SigningKey{id->get<std::string>(), std::move(*secret)});
    }
    return KeyRing(std::move(out), std::move(sign_with));
}

KeyRing KeyRing::from_file(const std::filesystem::path& path) {
    auto contents = secrets::read_private_file(path, "signing keys");
    json doc = json::parse(contents, nullptr, false);
    secrets::wipe(contents);
    if (doc.is_discarded()) refuse(path.string() + " is not JSON");
    return from_json(doc);
}

std::vector<std::string> KeyRing::ids() const {
    std::vector<std::string> out;
    for (const auto& [id, secret] : secrets_) out.push_back(id);
    return out;
}

std::optional<std::string> KeyRing::mac(std::string_view id, std::string_view data) const {
    const auto it = secrets_.find(id);
    if (it == secrets_.end()) return std::nullopt;
    std::string out(EVP_MAX_MD_SIZE, '\0');
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), it->second.data(), static_cast<int>(it->second.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(),
             reinterpret_cast<unsigned char*>(out.data()), &length) == nullptr ||
        length != kMacBytes) {
        throw std::runtime_error("signing: HMAC-SHA256 failed in libcrypto");
    }
    out.resize(length);
    return out;
}

void sign_event(EventData& event, std::string_view topic, const KeyRing& keys) {
    if (keys.sign_with().empty()) throw Error(errc::invalid_config, "signing: the key ring names no key to sign with");
    auto& extra = event.metadata.extra;
    if (!extra.is_null() && !extra.is_object()) {
        throw Error(errc::invalid_argument,
                    "signing event " + event.event_id + ": metadata.extra must be a JSON object");
    }
    std::string text;
    try {
        json unsigned_extra = extra.is_object() ? extra : json::object();
        unsigned_extra.erase("signature");
        extra = std::move(unsigned_extra);
        text = signed_text(event, topic);
    } catch (const json::exception& e) {
        throw Error(errc::invalid_argument,
                    "signing event " + event.event_id + ": it cannot be written as JSON: " + std::string(e.what()));
    }
    const auto mac = keys.mac(keys.sign_with(), text);
    event.metadata.extra["signature"] = {{"key", keys.sign_with()}, {"hmac_sha256", secrets::to_hex(*mac)}};
}

std::optional<std::string> signature_problem(const EventData& event, std::string_view topic, const KeyRing& keys) {
    const json& extra = event.metadata.extra;
    const auto sig = extra.is_object() ? extra.find("signature") : extra.end();
    if (!extra.is_object() || sig == extra.end()) return "unsigned";
    const auto key = sig->is_object() ? sig->find("key") : sig->end();
    const auto hex = sig->is_object() ? sig->find("hmac_sha256") : sig->end();
    if (!sig->is_object() || key == sig->end() || !key->is_string() || hex == sig->end() || !hex->is_string()) {
        return "malformed signature (expected {\"key\", \"hmac_sha256\"})";
    }
    const auto& id = key->get_ref<const std::string&>();
    const auto given = secrets::from_hex(hex->get_ref<const std::string&>());
    if (!given || given->size() != kMacBytes) return "malformed signature (hmac_sha256 is not 64 hex digits)";
    if (!keys.has(id)) {
        return "signed with key '" + (valid_key_id(id) ? id : std::string("(not a key id)")) +
               "', which this service does not hold";
    }
    std::string text;
    try {
        text = signed_text(event, topic);
    } catch (const json::exception&) {
        return "its fields cannot be written as JSON (invalid UTF-8)";
    }
    const auto expected = keys.mac(id, text);
    if (CRYPTO_memcmp(expected->data(), given->data(), kMacBytes) != 0) {
        return "bad signature (key '" + id + "'): the message was changed or not signed with that key";
    }
    return std::nullopt;
}

}  // namespace boong
