#include <boong/error.hpp>

#include <string>

namespace boong {
namespace {

// Boost's error_category has a protected non-virtual destructor by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "boong"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::concurrency_conflict: return "concurrency conflict";
            case errc::duplicate_event: return "duplicate event id";
            case errc::invalid_argument: return "invalid argument";
            case errc::invalid_config: return "invalid configuration";
            case errc::not_found: return "not found";
            case errc::rejected: return "rejected";
            case errc::store_unavailable: return "event store unavailable";
            case errc::broker_unavailable: return "message broker unavailable";
            case errc::protocol_error: return "protocol error";
            case errc::saga_not_resumable: return "saga not resumable";
            case errc::unknown_event: return "unknown event";
            case errc::dependency_unavailable: return "dependency unavailable";
            case errc::definition_mismatch: return "saga definition mismatch";
            case errc::transaction_aborted: return "transaction aborted";
        }
        return "unknown boong error " + std::to_string(ev);
    }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& boong_category() noexcept {
    static const Category category;  // immutable; function-local so it is ready before first use
    return category;
}

namespace {
std::string conflict_message(const std::string& stream, std::int64_t expected, std::int64_t actual) {
    std::string m = "stream '" + stream + "': expected ";
    m += expected == 0 ? std::string("no stream") : "version " + std::to_string(expected);
    m += ", but it is at ";
    m += actual == 0 ? std::string("no stream") : "version " + std::to_string(actual);
    return m;
}
}  // namespace

ConcurrencyConflict::ConcurrencyConflict(std::string stream, std::int64_t expected, std::int64_t actual)
    : Error(errc::concurrency_conflict, conflict_message(stream, expected, actual)),
      stream_(std::move(stream)),
      expected_(expected),
      actual_(actual) {}

bool is_unavailable(const error_code& code) noexcept {
    return code == errc::store_unavailable || code == errc::broker_unavailable ||
           code == errc::dependency_unavailable;
}

bool is_unavailable(const std::exception_ptr& error) noexcept {
    if (!error) return false;
    try {
        std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
        return is_unavailable(e.code());
    } catch (...) {
        return false;
    }
}

std::string describe(const std::exception_ptr& error) {
    if (!error) return "no error";
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace boong
