// Text forms of secret bytes and reading them from files: what the signing
// keys and the field-encryption master key share (src/signing.cpp,
// src/field_encryption.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace boong::secrets {

std::string to_hex(std::string_view bytes);
// nullopt for text that is not an even number of hex digits.
std::optional<std::string> from_hex(std::string_view hex);

// RFC 4648 base64, with padding.
std::string to_base64(std::string_view bytes);
// nullopt for text that is not padded base64.
std::optional<std::string> from_base64(std::string_view text);

// The contents of a file that only its owner may read: Error(errc::invalid_config),
// starting with `what`, when it cannot be read or its group or others may
// (it holds secrets). The caller wipes what it is given.
std::string read_private_file(const std::filesystem::path& path, std::string_view what);

// Overwrites `text` with zeros (one the compiler cannot drop).
void wipe(std::string& text) noexcept;

}  // namespace boong::secrets
