// Who holds a lease: "name/incarnation".
#pragma once

#include <string>
#include <string_view>

namespace boong {

// `name` (empty: "<hostname>-<pid>") followed by '/' and a fresh random
// incarnation id. The name must be unique among the processes running at
// once and may stay the same across restarts: a restarted process then takes
// its previous incarnation's work back at once instead of waiting for leases
// to expire. Throws Error(errc::invalid_config) when `name` is longer than
// 200 characters or holds anything but letters, digits and "-_.:".
std::string make_owner(std::string_view name = {});

// The name part of an owner ("name/incarnation" -> "name"): two owners with
// the same name are incarnations of one process, the later one its restart.
constexpr std::string_view owner_name(std::string_view owner) noexcept { return owner.substr(0, owner.find('/')); }

// A name that stays the same when the process restarts: "<hostname>-<program>-
// <purpose>" (characters make_owner refuses become '_', cut to 200). Unique
// among live processes as long as one host runs one instance of a program
// per purpose; two instances need names of their own (the OutboxRelay says
// so in its log when it meets its twin).
std::string stable_owner_name(std::string_view purpose);

}  // namespace boong
