#include <boong/error.hpp>
#include <boong/event.hpp>
#include <boong/owner.hpp>

#include <unistd.h>

#include <array>

namespace boong {
namespace {

bool owner_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':';
}

}  // namespace

std::string make_owner(std::string_view name) {
    std::string n(name);
    if (n.empty()) {
        std::array<char, 256> host{};
        if (gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
            n = "boong";
        } else {
            n = host.data();
        }
        for (char& c : n) {
            if (!owner_char(c)) c = '_';
        }
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
