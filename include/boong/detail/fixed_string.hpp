#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace boong::detail {

// A string literal usable as a template argument: Step<"reserve_items", ...>.
template <std::size_t N>
struct fixed_string {
    char value[N]{};
    constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, value); }  // NOLINT: implicit on purpose
    constexpr std::string_view view() const { return {value, N - 1}; }
};

}  // namespace boong::detail
