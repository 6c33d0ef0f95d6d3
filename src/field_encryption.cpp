#include <boong/error.hpp>
#include <boong/field_encryption.hpp>
#include <boong/subject_keys.hpp>

#include "secrets.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace boong {

namespace {

constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 12;  // GCM's natural nonce
constexpr std::size_t kTagBytes = 16;
constexpr const char* kEncrypted = "boong_encrypted";
constexpr const char* kRedacted = "boong_redacted";

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
        throw std::runtime_error("field encryption: libcrypto's RAND_bytes failed");
    }
    return out;
}

struct CipherContextFree {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// AES-256-GCM: the ciphertext with the tag after it.
std::string seal(std::string_view key, std::string_view nonce, std::string_view aad, std::string_view plaintext) {
    const CipherContext ctx(EVP_CIPHER_CTX_new());
    std::string out(plaintext.size() + kTagBytes, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    int n = 0, last = 0;
    const bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                    EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key), bytes(nonce)) == 1 &&
                    EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes(aad), static_cast<int>(aad.size())) == 1 &&
                    EVP_EncryptUpdate(ctx.get(), o, &n, bytes(plaintext), static_cast<int>(plaintext.size())) == 1 &&
                    EVP_EncryptFinal_ex(ctx.get(), o + n, &last) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, o + plaintext.size()) == 1;
    if (!ok) throw std::runtime_error("field encryption: AES-256-GCM failed in libcrypto");
    return out;
}

// nullopt when the ciphertext, its tag or the AAD do not match the key.
std::optional<std::string> open(std::string_view key, std::string_view nonce, std::string_view aad,
                                std::string_view sealed) {
    if (sealed.size() < kTagBytes) return std::nullopt;
    const auto length = sealed.size() - kTagBytes;
    const CipherContext ctx(EVP_CIPHER_CTX_new());
    std::string out(length, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    std::string tag(sealed.substr(length));
    int n = 0, last = 0;
    const bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
                    EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key), bytes(nonce)) == 1 &&
                    EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes(aad), static_cast<int>(aad.size())) == 1 &&
                    EVP_DecryptUpdate(ctx.get(), o, &n, bytes(sealed), static_cast<int>(length)) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
                    EVP_DecryptFinal_ex(ctx.get(), o + n, &last) == 1;
    if (!ok) {
        secrets::wipe(out);
        return std::nullopt;
    }
    return out;
}

// What a field's ciphertext is bound to: a copy moved to another field,
// subject or key version does not open.
std::string field_aad(std::string_view subject, std::int32_t version, std::string_view pointer) {
    return json::array({"boong-field-v1", subject, version, pointer}).dump();
}

std::string key_aad(std::string_view subject, std::int32_t version) {
    return json::array({"boong-key-v1", subject, version}).dump();
}

json::json_pointer pointer_of(const std::string& text) {
    try {
        return json::json_pointer(text);
    } catch (const json::exception&) {
        throw Error(errc::invalid_config, "field encryption: '" + text + "' is not a JSON pointer (\"/email\")");
    }
}

bool is_encrypted(const json& v) { return v.is_object() && v.contains(kEncrypted); }

// One JSON pointer token: '~' and '/' escaped (RFC 6901).
std::string escape_token(const std::string& token) {
    std::string out;
    for (const char c : token) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

[[noreturn]] void cannot_read(const std::string& pointer, const std::string& subject, std::int32_t version,
                              const std::string& why) {
    throw Error(errc::unknown_event, "field encryption: cannot read " + pointer + " (subject '" + subject +
                                         "', key version " + std::to_string(version) + "): " + why);
}

json open_field(const json& value, const std::string& pointer, const FindSubjectKey& find) {
    const auto subject = value.find("subject");
    const auto version = value.find("key_version");
    const auto nonce_text = value.find("nonce");
    const auto sealed_text = value.find("ciphertext");
    if (value.at(kEncrypted) != 1 || subject == value.end() || !subject->is_string() || version == value.end() ||
        !version->is_number_integer() || nonce_text == value.end() || !nonce_text->is_string() ||
        sealed_text == value.end() || !sealed_text->is_string()) {
        throw Error(errc::unknown_event, "field encryption: " + pointer +
                                             " is a malformed encrypted value (boong_encrypted 1 with subject, "
                                             "key_version, nonce and ciphertext expected)");
    }
    const auto& who = subject->get_ref<const std::string&>();
    const auto v = version->get<std::int32_t>();
    const auto nonce = secrets::from_base64(nonce_text->get_ref<const std::string&>());
    const auto sealed = secrets::from_base64(sealed_text->get_ref<const std::string&>());
    if (!nonce || nonce->size() != kNonceBytes || !sealed) {
        cannot_read(pointer, who, v, "nonce or ciphertext is not base64 of the right length");
    }
    const KeyLookup found = find(who, v);
    if (found.state == KeyLookup::State::shredded) {
        return json{{kRedacted, "the subject's key was deleted"}, {"subject", who}};
    }
    if (found.state != KeyLookup::State::found || !found.key) cannot_read(pointer, who, v, "no such key");
    auto plain = open(found.key->secret, *nonce, field_aad(who, v, pointer), *sealed);
    if (!plain) {
        cannot_read(pointer, who, v,
                    "the ciphertext does not open with its key (changed, moved from another field, or a wrong key)");
    }
    json out = json::parse(*plain, nullptr, false);
    secrets::wipe(*plain);
    if (out.is_discarded()) cannot_read(pointer, who, v, "the plaintext is not JSON");
    return out;
}

void open_all(json& value, const std::string& pointer, const FindSubjectKey& find) {
    if (is_encrypted(value)) {
        value = open_field(value, pointer, find);
    } else if (value.is_object()) {
        for (auto& [k, v] : value.items()) open_all(v, pointer + "/" + escape_token(k), find);
    } else if (value.is_array()) {
        for (std::size_t i = 0; i < value.size(); ++i) open_all(value[i], pointer + "/" + std::to_string(i), find);
    }
}

}  // namespace

SubjectKey::SubjectKey(std::string subject_id, std::int32_t key_version, std::string key_secret)
    : subject(std::move(subject_id)), version(key_version), secret(std::move(key_secret)) {}

SubjectKey::~SubjectKey() { secrets::wipe(secret); }

SubjectKey SubjectKey::generate(std::string subject, std::int32_t version) {
    return SubjectKey(std::move(subject), version, random_bytes(kKeyBytes));
}

FieldPolicy& FieldPolicy::mark(std::string type, SensitiveFields fields) {
    auto refuse = [&](const std::string& why) {
        throw Error(errc::invalid_config, "field encryption: event type '" + type + "': " + why);
    };
    if (type.empty()) refuse("no type name");
    if (marks_.contains(type)) refuse("marked twice");
    if (fields.fields.empty()) refuse("no field to encrypt");
    for (const auto& p : fields.fields) {
        if (p.empty()) refuse("the root cannot be encrypted: name fields");
        (void)pointer_of(p);
    }
    if (fields.subject.empty()) refuse("no subject field");
    (void)pointer_of(fields.subject);
    for (std::size_t i = 0; i < fields.fields.size(); ++i) {
        const auto& a = fields.fields[i];
        if (a == fields.subject || fields.subject.starts_with(a + "/")) {
            refuse("the subject " + fields.subject + " must stay readable, and " + a + " would encrypt it");
        }
        for (std::size_t j = 0; j < fields.fields.size(); ++j) {
            const auto& b = fields.fields[j];
            if (i != j && (a == b || b.starts_with(a + "/"))) refuse(b + " is listed twice, or inside " + a);
        }
    }
    marks_.emplace(std::move(type), std::move(fields));
    return *this;
}

const SensitiveFields* FieldPolicy::find(std::string_view type) const {
    const auto it = marks_.find(type);
    return it == marks_.end() ? nullptr : &it->second;
}

std::string subject_of(const json& payload, const SensitiveFields& marks) {
    const auto where = pointer_of(marks.subject);
    if (!payload.is_object() || !payload.contains(where)) {
        throw Error(errc::invalid_argument, "field encryption: the payload has no subject at " + marks.subject);
    }
    const auto& v = payload.at(where);
    if (v.is_string() && !v.get_ref<const std::string&>().empty()) return v.get<std::string>();
    if (v.is_number_integer()) return v.dump();
    throw Error(errc::invalid_argument,
                "field encryption: the subject at " + marks.subject + " is not a non-empty string or an integer");
}

json encrypt_fields(const json& payload, const SensitiveFields& marks, const SubjectKey& key) {
    const std::string subject = subject_of(payload, marks);
    if (subject != key.subject) {
        throw Error(errc::invalid_argument, "field encryption: the payload's subject is '" + subject +
                                                "', the key is for subject '" + key.subject + "'");
    }
    if (key.secret.size() != kKeyBytes) {
        throw Error(errc::invalid_argument, "field encryption: the key of subject '" + key.subject + "' has " +
                                                std::to_string(key.secret.size()) + " bytes, not 32");
    }
    json out = payload;
    for (const auto& field : marks.fields) {
        const auto where = pointer_of(field);
        if (!out.contains(where)) continue;
        auto& value = out.at(where);
        if (is_encrypted(value)) {
            throw Error(errc::invalid_argument, "field encryption: " + field + " is encrypted already");
        }
        std::string plain = value.dump();
        const std::string nonce = random_bytes(kNonceBytes);
        const std::string sealed = seal(key.secret, nonce, field_aad(subject, key.version, field), plain);
        secrets::wipe(plain);
        value = json{{kEncrypted, 1},
                     {"subject", subject},
                     {"key_version", key.version},
                     {"nonce", secrets::to_base64(nonce)},
                     {"ciphertext", secrets::to_base64(sealed)}};
    }
    return out;
}

json decrypt_fields(const json& payload, const FindSubjectKey& find) {
    json out = payload;
    open_all(out, "", find);
    return out;
}

bool has_protected_fields(const json& payload) {
    if (payload.is_object()) {
        if (payload.contains(kEncrypted) || payload.contains(kRedacted)) return true;
        for (const auto& [k, v] : payload.items()) {
            if (has_protected_fields(v)) return true;
        }
    } else if (payload.is_array()) {
        for (const auto& v : payload) {
            if (has_protected_fields(v)) return true;
        }
    }
    return false;
}

namespace {

void collect_keys(const json& value, std::vector<std::pair<std::string, std::int32_t>>& out) {
    if (is_encrypted(value)) {
        const auto subject = value.find("subject");
        const auto version = value.find("key_version");
        if (subject == value.end() || !subject->is_string() || version == value.end() ||
            !version->is_number_integer()) {
            return;
        }
        std::pair<std::string, std::int32_t> key{subject->get<std::string>(), version->get<std::int32_t>()};
        if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(std::move(key));
    } else if (value.is_object()) {
        for (const auto& [k, v] : value.items()) collect_keys(v, out);
    } else if (value.is_array()) {
        for (const auto& v : value) collect_keys(v, out);
    }
}

}  // namespace

std::vector<std::pair<std::string, std::int32_t>> keys_needed(const json& payload) {
    std::vector<std::pair<std::string, std::int32_t>> out;
    collect_keys(payload, out);
    return out;
}

void detail::validate_subject(const std::string& subject) {
    if (subject.empty() || subject.size() > 256) {
        throw Error(errc::invalid_argument, "field encryption: a subject is 1..256 bytes, not " +
                                                std::to_string(subject.size()));
    }
    for (const char c : subject) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            throw Error(errc::invalid_argument, "field encryption: a subject has no control characters");
        }
    }
    // UTF-8: nlohmann refuses to write what is not.
    try {
        (void)json(subject).dump();
    } catch (const json::exception&) {
        throw Error(errc::invalid_argument, "field encryption: a subject is UTF-8 text");
    }
}

MasterKey::MasterKey(std::string secret) : secret_(std::move(secret)) {
    if (secret_.size() != kKeyBytes) {
        const auto n = secret_.size();
        secrets::wipe(secret_);
        throw Error(errc::invalid_config,
                    "field encryption: the master key has " + std::to_string(n) + " bytes; it must have 32");
    }
}

MasterKey::~MasterKey() { secrets::wipe(secret_); }

MasterKey MasterKey::from_hex(std::string_view hex) {
    auto secret = secrets::from_hex(hex);
    if (!secret) throw Error(errc::invalid_config, "field encryption: the master key is not hex (64 digits)");
    return MasterKey(std::move(*secret));
}

MasterKey MasterKey::from_env(const char* variable) {
    const char* value = std::getenv(variable);
    if (!value || !*value) {
        throw Error(errc::invalid_config, std::string("field encryption: the master key's variable ") + variable +
                                              " is not set");
    }
    try {
        return from_hex(value);
    } catch (const Error&) {
        throw Error(errc::invalid_config, std::string("field encryption: the master key in ") + variable +
                                              " is not 64 hex digits");
    }
}

MasterKey MasterKey::from_file(const std::filesystem::path& path) {
    std::string text = secrets::read_private_file(path, "field encryption: the master key file");
    std::string_view digits(text);
    while (!digits.empty() && (digits.back() == '\n' || digits.back() == '\r' || digits.back() == ' ')) {
        digits.remove_suffix(1);
    }
    auto secret = secrets::from_hex(digits);
    secrets::wipe(text);
    if (!secret) {
        throw Error(errc::invalid_config, "field encryption: the master key file " + path.string() +
                                              " does not hold 64 hex digits");
    }
    return MasterKey(std::move(*secret));
}

std::string MasterKey::wrap(const SubjectKey& key) const {
    const std::string nonce = random_bytes(kNonceBytes);
    return secrets::to_base64(nonce + seal(secret_, nonce, key_aad(key.subject, key.version), key.secret));
}

SubjectKey MasterKey::unwrap(std::string subject, std::int32_t version, std::string_view wrapped) const {
    const auto raw = secrets::from_base64(wrapped);
    std::optional<std::string> secret;
    if (raw && raw->size() == kNonceBytes + kKeyBytes + kTagBytes) {
        const std::string_view all(*raw);
        secret = open(secret_, all.substr(0, kNonceBytes), key_aad(subject, version), all.substr(kNonceBytes));
    }
    if (!secret) {
        throw Error(errc::invalid_config, "field encryption: the key of subject '" + subject + "' version " +
                                              std::to_string(version) +
                                              " does not unwrap: another master key wrapped it, or it was changed");
    }
    return SubjectKey(std::move(subject), version, std::move(*secret));
}

}  // namespace boong
