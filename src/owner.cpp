#include <boong/error.hpp>
#include <boong/event.hpp>
#include <boong/owner.hpp>

#include <errno.h>  // program_invocation_short_name
#include <unistd.h>

#include <array>
#include <string>

namespace boong {
namespace {

bool owner_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':';
}

std::string sanitized(std::string n) {
    for (char& c : n) {
        if (!owner_char(c)) c = '_';
    }
    return n;
}

std::string host_name() {
    std::array<char, 256> host{};
    if (gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') return "boong";
    return sanitized(host.data());
}

// The program's file name (glibc's program_invocation_short_name: argv[0]
// without its directory).
std::string program_name() {
    const char* p = program_invocation_short_name;
    return sanitized(p && *p ? p : "boong");
}

}  // namespace

std::string stable_owner_name(std::string_view purpose) {
    std::string n = host_name();
    if (n.size() > 80) n.resize(80);
    std::string program = program_name();
    if (program.size() > 60) program.resize(60);
    n += '-';
    n += program;
    n += '-';
    n += sanitized(std::string(purpose));
    if (n.size() > 200) n.resize(200);
    return n;
}

std::string make_owner(std::string_view name) {
    std::string n(name);
    if (n.empty()) {
        n = host_name();
        if (n.size() > 180) n.resize(180);
        // Appended piecewise: GCC 12 warns falsely (-Wrestrict, PR105329) on "-" + std::string.
        n += '-';
        n += std::to_string(::getpid());
    }
    if (n.size() > 200) throw Error(errc::invalid_config, "an owner name must have at most 200 characters");
    for (char c : n) {
        if (!owner_char(c)) {
            throw Error(errc::invalid_config, "owner name '" + n + "': only letters, digits and \"-_.:\" are allowed");
        }
    }
    return n + "/" + IdGenerator().next();
}

}  // namespace boong
