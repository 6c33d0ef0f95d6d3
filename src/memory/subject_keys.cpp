#include <boong/error.hpp>
#include <boong/memory/subject_keys.hpp>

#include <map>
#include <mutex>
#include <vector>

namespace boong {

struct MemorySubjectKeys::State {
    struct Subject {
        std::vector<SubjectKey> versions;  // version i + 1 at i
        bool shredded = false;
    };
    mutable std::mutex mutex;
    std::map<std::string, Subject, std::less<>> subjects;
};

namespace {

[[noreturn]] void refuse_shredded(const std::string& subject) {
    throw Error(errc::rejected,
                "field encryption: subject '" + subject + "' was shredded: nothing new is encrypted for it");
}

}  // namespace

MemorySubjectKeys::MemorySubjectKeys(executor_type executor)
    : executor_(std::move(executor)), state_(std::make_unique<State>()) {}
MemorySubjectKeys::~MemorySubjectKeys() = default;

SubjectKey MemorySubjectKeys::current(const std::string& subject) {
    detail::validate_subject(subject);
    std::lock_guard lock(state_->mutex);
    auto& s = state_->subjects[subject];
    if (s.shredded) refuse_shredded(subject);
    if (s.versions.empty()) s.versions.push_back(SubjectKey::generate(subject, 1));
    return s.versions.back();
}

KeyLookup MemorySubjectKeys::find(const std::string& subject, std::int32_t version) const {
    detail::validate_subject(subject);
    std::lock_guard lock(state_->mutex);
    const auto it = state_->subjects.find(subject);
    if (it == state_->subjects.end()) return KeyLookup::unknown();
    if (it->second.shredded) return KeyLookup::shredded();
    const auto& versions = it->second.versions;
    if (version < 1 || static_cast<std::size_t>(version) > versions.size()) return KeyLookup::unknown();
    return KeyLookup::found(versions[static_cast<std::size_t>(version) - 1]);
}

SubjectKey MemorySubjectKeys::rotate(const std::string& subject) {
    detail::validate_subject(subject);
    std::lock_guard lock(state_->mutex);
    auto& s = state_->subjects[subject];
    if (s.shredded) refuse_shredded(subject);
    s.versions.push_back(SubjectKey::generate(subject, static_cast<std::int32_t>(s.versions.size()) + 1));
    return s.versions.back();
}

std::int64_t MemorySubjectKeys::shred(const std::string& subject) {
    detail::validate_subject(subject);
    std::lock_guard lock(state_->mutex);
    auto& s = state_->subjects[subject];
    const auto deleted = static_cast<std::int64_t>(s.versions.size());
    s.versions.clear();  // each key wipes its bytes as it goes
    s.shredded = true;
    return deleted;
}

}  // namespace boong
