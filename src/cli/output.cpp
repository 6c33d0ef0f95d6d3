#include "output.hpp"

#include <algorithm>
#include <utility>
#include <cstdlib>
#include <ostream>

#include <unistd.h>

namespace boong::cli {

namespace {

// Display width: counts UTF-8 sequences, not bytes (close enough for the
// names, ids and messages tables show).
std::size_t width(const std::string& s) {
    std::size_t n = 0;
    for (const unsigned char c : s) {
        if ((c & 0xC0) != 0x80) ++n;
    }
    return n;
}

const char* ansi(Colour c) {
    switch (c) {
        case Colour::red: return "\033[31m";
        case Colour::green: return "\033[32m";
        case Colour::yellow: return "\033[33m";
        case Colour::blue: return "\033[34m";
        case Colour::dim: return "\033[2m";
        case Colour::bold: return "\033[1m";
        case Colour::none: break;
    }
    return "";
}

}  // namespace

bool stdout_wants_colour() {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour != nullptr && *no_colour != '\0') return false;
    return ::isatty(STDOUT_FILENO) == 1;
}

std::string paint(const std::string& text, Colour c, bool colour) {
    if (!colour || c == Colour::none) return text;
    return ansi(c) + text + "\033[0m";
}

Colour phase_colour(std::string_view phase) {
    if (phase == "completed") return Colour::green;
    if (phase == "compensated") return Colour::yellow;
    if (phase == "failed" || phase == "blocked") return Colour::red;
    return Colour::none;
}

void Table::print(std::ostream& out, bool colour) const {
    std::vector<std::size_t> widths(headers_.size(), 0);
    for (std::size_t i = 0; i < headers_.size(); ++i) widths[i] = width(headers_[i]);
    auto text_of = [](const Cell& c) { return c.text.empty() ? std::string("-") : c.text; };
    for (const auto& row : rows_) {
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
            widths[i] = std::max(widths[i], width(text_of(row[i])));
        }
    }
    auto line = [&](auto&& cell_at, std::size_t count) {
        std::string s;
        for (std::size_t i = 0; i < count; ++i) {
            auto [text, c] = cell_at(i);
            const bool last = i + 1 == count;
            s += paint(text, c, colour);
            if (!last) s += std::string(widths[i] - width(text) + 2, ' ');
        }
        out << s << '\n';
    };
    line([&](std::size_t i) { return std::pair<std::string, Colour>(headers_[i], Colour::bold); }, headers_.size());
    for (const auto& row : rows_) {
        line([&](std::size_t i) { return std::pair<std::string, Colour>(text_of(row[i]), row[i].colour); },
             std::min(row.size(), headers_.size()));
    }
}

void print_json(std::ostream& out, const json& document) { out << document.dump(2) << '\n'; }

json json_time(const std::optional<Clock::time_point>& t) {
    if (!t) return nullptr;
    return format_timestamp(*t);
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string shorten(const std::string& s, std::size_t max) {
    if (width(s) <= max || max < 2) return s;
    std::size_t kept = 0;
    std::size_t i = 0;
    for (; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
            if (kept == max - 1) break;
            ++kept;
        }
    }
    return s.substr(0, i) + "…";
}

}  // namespace boong::cli
