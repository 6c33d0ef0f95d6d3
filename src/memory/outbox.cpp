#include <boong/detail/validate.hpp>
#include <boong/memory/outbox.hpp>
#include <boong/owner.hpp>

#include <algorithm>
#include <map>
#include <mutex>

namespace boong {

struct MemoryOutbox::State {
    struct Cursor {
        std::int64_t position = 0;
        std::string owner;  // empty: never held
        Clock::time_point lease_until{};
    };
    mutable std::mutex mutex;
    std::map<std::string, Cursor, std::less<>> cursors;
};

MemoryOutbox::MemoryOutbox(MemoryEventStore& store) : store_(store), state_(std::make_unique<State>()) {}
MemoryOutbox::~MemoryOutbox() = default;

std::optional<std::int64_t> MemoryOutbox::acquire(const std::string& relay, const std::string& owner,
                                                  milliseconds lease) {
    detail::validate_cursor_request(relay, owner, lease);
    std::lock_guard lock(state_->mutex);
    auto& c = state_->cursors[relay];
    const auto now = Clock::now();
    const bool free = c.owner.empty() || c.owner == owner || c.lease_until < now || owner_name(c.owner) == owner_name(owner);
    if (!free) return std::nullopt;
    c.owner = owner;
    c.lease_until = now + lease;
    return c.position;
}

bool MemoryOutbox::advance(const std::string& relay, const std::string& owner, std::int64_t position,
                           milliseconds lease) {
    detail::validate_cursor_request(relay, owner, lease);
    std::lock_guard lock(state_->mutex);
    auto it = state_->cursors.find(relay);
    if (it == state_->cursors.end() || it->second.owner != owner) return false;
    it->second.position = std::max(it->second.position, position);
    it->second.lease_until = Clock::now() + lease;
    return true;
}

void MemoryOutbox::release(const std::string& relay, const std::string& owner) {
    detail::validate_cursor_request(relay, owner, milliseconds(1));  // no lease to check
    std::lock_guard lock(state_->mutex);
    auto it = state_->cursors.find(relay);
    // Expired from now on: strictly earlier than the next acquire's clock.
    if (it != state_->cursors.end() && it->second.owner == owner) it->second.lease_until = Clock::now() - milliseconds(1);
}

OutboxStatus MemoryOutbox::status(const std::string& relay) const {
    detail::validate_relay_name(relay);
    OutboxStatus s;
    s.relay = relay;
    {
        std::lock_guard lock(state_->mutex);
        if (auto it = state_->cursors.find(relay); it != state_->cursors.end()) {
            s.position = it->second.position;
            s.owner = it->second.owner;
            if (!s.owner.empty()) s.lease_until = it->second.lease_until;
        }
    }
    s.pending = std::max<std::int64_t>(0, store_.last_position() - s.position);
    return s;
}

}  // namespace boong
