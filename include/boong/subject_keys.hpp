// Where the keys of field encryption live (boong/field_encryption.hpp): one
// or more versions per data subject, and the record that a subject was
// shredded. Models: MemorySubjectKeys (boong/memory/subject_keys.hpp, tests
// and demos) and PostgresSubjectKeys (boong/postgres/subject_keys.hpp, keys
// wrapped by a MasterKey in the store's database).
//
//   SubjectKey k = co_await keys.async_current("c-42", asio::use_awaitable);
//   json stored = boong::encrypt_fields(payload, marks, k);
//   ...
//   co_await keys.async_shred("c-42", asio::use_awaitable);  // c-42's fields read as redacted from now on
//
//  - async_current(subject) -> SubjectKey
//      The newest key; the first call for a subject makes version 1.
//      Error(errc::rejected) once the subject is shredded: nothing new is
//      encrypted for an erased subject.
//  - async_find(subject, version) -> KeyLookup
//      found (the key), shredded (the subject was shredded), or unknown (no
//      such version: never made, or another store).
//  - async_rotate(subject) -> SubjectKey
//      A new newest version; older ones stay for reading. Error(errc::rejected)
//      once shredded.
//  - async_shred(subject) -> std::int64_t
//      Deletes every version's key material and records the subject as
//      shredded (also when it had no key yet); how many versions were
//      deleted (0 the second time). Irreversible.
//
// A subject is 1..256 bytes of UTF-8 without control characters; anything
// else is Error(errc::invalid_argument).
#pragma once

#include <boong/field_encryption.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace boong {

template <class S>
concept SubjectKeyStore = requires(S& s, std::string subject, std::int32_t version) {
    { s.async_current(subject, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<SubjectKey>>;
    { s.async_find(subject, version, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<KeyLookup>>;
    { s.async_rotate(subject, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<SubjectKey>>;
    { s.async_shred(subject, boost::asio::use_awaitable) } -> std::same_as<boost::asio::awaitable<std::int64_t>>;
};

namespace detail {
// Error(errc::invalid_argument) unless `subject` is a subject name (above).
void validate_subject(const std::string& subject);
}  // namespace detail

}  // namespace boong
