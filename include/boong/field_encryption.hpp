// Field encryption with crypto-shredding: the sensitive fields of an event
// (an e-mail, an address) are encrypted with AES-256-GCM under a key of the
// data subject the event names (a customer), so that deleting that one key
// makes those fields unreadable wherever the event went, while the event, its
// stream and every other field stay as they were (docs/security.md).
//
//   boong::FieldPolicy policy;
//   policy.mark("CustomerRegistered", {.subject = "/customer_id", .fields = {"/email", "/address"}});
//   auto key = keys.current("c-42");                      // the subject's newest key
//   json stored = boong::encrypt_fields(payload, *policy.find("CustomerRegistered"), key);
//   json shown = boong::decrypt_fields(stored, find_key);  // redacted once c-42's key is shredded
//
// An encrypted field's value is an object that says what opens it:
//   {"boong_encrypted": 1, "subject": "c-42", "key_version": 1, "nonce": base64, "ciphertext": base64}
// (the ciphertext ends with GCM's 16-byte tag). The subject, the key version
// and the field's JSON pointer are authenticated with it, so a ciphertext
// copied to another field or another subject does not open. A field whose
// subject's key was shredded reads as
//   {"boong_redacted": "the subject's key was deleted", "subject": "c-42"}.
// The value encrypted is the field's JSON text, so any JSON value works.
#pragma once

#include <boong/event.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boong {

// A data subject's key: 32 random bytes, one version of several (rotation
// makes a new version for new writes; older ones stay to read old events).
// The bytes are wiped when it is destroyed; never logged.
struct SubjectKey {
    std::string subject;
    std::int32_t version = 1;
    std::string secret;  // 32 bytes

    SubjectKey() = default;
    SubjectKey(std::string subject_id, std::int32_t key_version, std::string key_secret);
    SubjectKey(const SubjectKey&) = default;
    SubjectKey& operator=(const SubjectKey&) = default;
    SubjectKey(SubjectKey&&) noexcept = default;
    SubjectKey& operator=(SubjectKey&&) noexcept = default;
    ~SubjectKey();

    // A new random key for `subject` at `version`.
    static SubjectKey generate(std::string subject, std::int32_t version = 1);
};

// What an event type (or a snapshot type) marks as sensitive: the field that
// names the data subject, and the fields to encrypt, as JSON pointers into
// the payload ("/email", "/shipping/address").
struct SensitiveFields {
    std::string subject;
    std::vector<std::string> fields;
};

// The marks of each event type. mark() refuses, with
// Error(errc::invalid_config): a pointer that is not a JSON pointer, the
// root, no field, a field listed twice, the subject field among the fields
// (it must stay readable to find the key), a type marked twice.
class FieldPolicy {
public:
    FieldPolicy& mark(std::string type, SensitiveFields fields);
    const SensitiveFields* find(std::string_view type) const;
    bool empty() const noexcept { return marks_.empty(); }

private:
    std::map<std::string, SensitiveFields, std::less<>> marks_;
};

// The subject `payload` names by `marks` (a non-empty string, or an integer
// written in decimal). Error(errc::invalid_argument) when it names none.
std::string subject_of(const json& payload, const SensitiveFields& marks);

// `payload` with each marked field that is present encrypted under `key`
// (fields absent are left absent; a field already encrypted is refused).
// Error(errc::invalid_argument) when the payload is not an object, names
// another subject than `key`'s, or has no subject.
json encrypt_fields(const json& payload, const SensitiveFields& marks, const SubjectKey& key);

// What finding a subject's key version can give.
struct KeyLookup {
    enum class State { found, shredded, unknown };
    State state = State::unknown;
    std::optional<SubjectKey> key;  // when found

    static KeyLookup found(SubjectKey k) { return {State::found, std::move(k)}; }
    static KeyLookup shredded() { return {State::shredded, std::nullopt}; }
    static KeyLookup unknown() { return {State::unknown, std::nullopt}; }
};
using FindSubjectKey = std::function<KeyLookup(std::string_view subject, std::int32_t version)>;

// `payload` with every encrypted field (at any depth) opened: a shredded
// subject's fields read as redacted. Error(errc::unknown_event), naming the
// field, subject and key version but never a secret or a plaintext, for: a
// key the finder does not know (a key store not configured, or a master key
// that is not the one the keys were wrapped with), a ciphertext that does
// not open with its key (changed, moved, or a wrong key), a malformed
// encrypted value. Nothing is ever returned half-decrypted.
json decrypt_fields(const json& payload, const FindSubjectKey& find);

// Whether `payload` holds an encrypted or redacted field (at any depth).
bool has_protected_fields(const json& payload);

// The (subject, key version) pairs decrypt_fields will ask for, each once:
// what an asynchronous key store fetches before decrypting. Malformed
// encrypted values are left to decrypt_fields to report.
std::vector<std::pair<std::string, std::int32_t>> keys_needed(const json& payload);

// The key that wraps subject keys where they are stored (a key table), so
// that the table alone opens nothing. 32 bytes, from the environment (hex)
// or from a file only its owner may read (hex), never from argv. A KMS would
// be another model of the same two calls (wrap, unwrap).
class MasterKey {
public:
    // Error(errc::invalid_config) unless `secret` has 32 bytes.
    explicit MasterKey(std::string secret);
    MasterKey(const MasterKey&) = delete;
    MasterKey& operator=(const MasterKey&) = delete;
    MasterKey(MasterKey&&) noexcept = default;
    MasterKey& operator=(MasterKey&&) noexcept = default;
    ~MasterKey();

    static MasterKey from_hex(std::string_view hex);
    // The variable's value, 64 hex digits; Error(errc::invalid_config) naming
    // the variable (never its value) when unset or malformed.
    static MasterKey from_env(const char* variable);
    static MasterKey from_file(const std::filesystem::path& path);

    // `key`'s secret sealed under this key, bound to its subject and
    // version, as base64 text; unwrap() opens it or throws
    // Error(errc::invalid_config) (another master key, or a changed row).
    std::string wrap(const SubjectKey& key) const;
    SubjectKey unwrap(std::string subject, std::int32_t version, std::string_view wrapped) const;

private:
    std::string secret_;
};

}  // namespace boong
