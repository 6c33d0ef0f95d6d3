// Subject keys in process memory (SubjectKeyStore, boong/subject_keys.hpp),
// for tests and demos of field encryption without a server. Keys are kept
// as they are (no master key): what a process holds in memory is readable
// by that process anyway.
#pragma once

#include <boong/detail/post.hpp>
#include <boong/subject_keys.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace boong {

class MemorySubjectKeys {
public:
    using executor_type = boost::asio::any_io_executor;

    explicit MemorySubjectKeys(executor_type executor);
    ~MemorySubjectKeys();
    MemorySubjectKeys(const MemorySubjectKeys&) = delete;
    MemorySubjectKeys& operator=(const MemorySubjectKeys&) = delete;

    executor_type get_executor() const { return executor_; }

    template <class Token>
    auto async_current(std::string subject, Token&& token) {
        return detail::async_immediate<SubjectKey>(executor_, std::forward<Token>(token),
                                                   [this, s = std::move(subject)] { return current(s); });
    }
    template <class Token>
    auto async_find(std::string subject, std::int32_t version, Token&& token) {
        return detail::async_immediate<KeyLookup>(executor_, std::forward<Token>(token),
                                                  [this, s = std::move(subject), version] { return find(s, version); });
    }
    template <class Token>
    auto async_rotate(std::string subject, Token&& token) {
        return detail::async_immediate<SubjectKey>(executor_, std::forward<Token>(token),
                                                   [this, s = std::move(subject)] { return rotate(s); });
    }
    template <class Token>
    auto async_shred(std::string subject, Token&& token) {
        return detail::async_immediate<std::int64_t>(executor_, std::forward<Token>(token),
                                                     [this, s = std::move(subject)] { return shred(s); });
    }

    // Synchronous forms (thread-safe), with the rules of SubjectKeyStore.
    SubjectKey current(const std::string& subject);
    KeyLookup find(const std::string& subject, std::int32_t version) const;
    SubjectKey rotate(const std::string& subject);
    std::int64_t shred(const std::string& subject);

private:
    struct State;
    executor_type executor_;
    std::unique_ptr<State> state_;
};

static_assert(SubjectKeyStore<MemorySubjectKeys>);

}  // namespace boong
