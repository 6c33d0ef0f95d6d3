// Signed envelopes: an HMAC-SHA256 over what a message says (its topic, its
// event's id, type, version, payload and metadata), under a key named in the
// message, so that a consumer can refuse what someone who can write to the
// broker but holds no key made up or changed (docs/security.md).
//
//   auto keys = std::make_shared<const boong::KeyRing>(boong::KeyRing::from_file("/etc/shop/signing-keys.json"));
//   boong::SignedBroker broker(redis, keys);  // signs what it publishes, refuses what is not signed
//
// The signature lives in metadata.extra["signature"]: {"key": id,
// "hmac_sha256": lowercase hex}. "signature" and "dead_letter" (which a
// broker adds when it dead-letters) are left out of what is signed.
#pragma once

#include <boong/event.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace boong {

// A signing key: its id (1..64 of [A-Za-z0-9._-]: it travels in every
// message) and its secret (at least 32 bytes).
struct SigningKey {
    std::string id;
    std::string secret;
};

// The keys a service signs and verifies with: several during a rotation
// (verify with all, sign with one), none of them ever printed. Immutable once
// made; share it as shared_ptr<const KeyRing>.
class KeyRing {
public:
    // Error(errc::invalid_config), naming the key id (never the secret), for
    // a bad id, a short secret, an id twice, no key, or a `sign_with` that
    // is not among them. `sign_with` empty: this ring only verifies.
    KeyRing(std::vector<SigningKey> keys, std::string sign_with);
    KeyRing(const KeyRing&) = delete;
    KeyRing& operator=(const KeyRing&) = delete;
    KeyRing(KeyRing&&) noexcept = default;
    KeyRing& operator=(KeyRing&&) noexcept = default;
    ~KeyRing();  // wipes the secrets

    // {"sign_with": "k2", "keys": [{"id": "k1", "secret_hex": "..."}, ...]}.
    static KeyRing from_json(const json& document);
    // The same, from a file that only its owner may read (a file readable
    // by group or others is refused: it holds secrets).
    static KeyRing from_file(const std::filesystem::path& path);

    const std::string& sign_with() const noexcept { return sign_with_; }
    bool has(std::string_view id) const { return secrets_.find(id) != secrets_.end(); }
    std::vector<std::string> ids() const;

    // The HMAC-SHA256 of `data` under key `id`, 32 bytes; nullopt for an
    // unknown id.
    std::optional<std::string> mac(std::string_view id, std::string_view data) const;

private:
    std::map<std::string, std::string, std::less<>> secrets_;
    std::string sign_with_;
};

// Signs `event` for `topic` with the ring's signing key (replacing any
// signature it had). Error(errc::invalid_config) when the ring only
// verifies; Error(errc::invalid_argument) for an event no broker would take
// (metadata.extra not an object, text that is not UTF-8).
void sign_event(EventData& event, std::string_view topic, const KeyRing& keys);

// Why `event`, as received on `topic`, is not authentic: unsigned, a
// malformed signature, an unknown key, or a signature that does not match
// (it was changed, or made without the key). nullopt: authentic. The reason
// names the key id, never a secret.
std::optional<std::string> signature_problem(const EventData& event, std::string_view topic, const KeyRing& keys);

}  // namespace boong
