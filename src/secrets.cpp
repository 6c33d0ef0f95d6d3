#include "secrets.hpp"

#include <boong/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace boong::secrets {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
    if (hex.size() % 2 != 0) return std::nullopt;
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi << 4 | lo));
    }
    return out;
}

std::string to_base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> from_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    // EVP_DecodeBlock skips blanks and decodes padding as zero bytes:
    // refuse the one and count the other.
    for (const char c : text) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return std::nullopt;
    }
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') ++padding;
    if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
    std::string out(3 * (text.size() / 4), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0 || static_cast<std::size_t>(n) < padding) return std::nullopt;
    out.resize(static_cast<std::size_t>(n) - padding);
    return out;
}

std::string read_private_file(const std::filesystem::path& path, std::string_view what) {
    auto refuse = [&](const std::string& why) { throw Error(errc::invalid_config, std::string(what) + ": " + why); };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) refuse("cannot read " + path.string());
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        refuse(path.string() + " may be read by its group or others (chmod 600 it): it holds secrets");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) refuse("cannot read " + path.string());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void wipe(std::string& text) noexcept { OPENSSL_cleanse(text.data(), text.size()); }

}  // namespace boong::secrets
