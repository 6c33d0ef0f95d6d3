// What `boong` prints: aligned tables for people (coloured only on a
// terminal, and never with NO_COLOR set), one JSON document for tools.
#pragma once

#include <boong/event.hpp>

#include <iosfwd>
#include <optional>
#include <string_view>
#include <utility>
#include <string>
#include <vector>

namespace boong::cli {

enum class Colour { none, red, green, yellow, blue, dim, bold };

// Whether stdout gets colour: a terminal, and NO_COLOR unset (no-color.org).
bool stdout_wants_colour();

// One cell of a table: its text, and how to colour it.
struct Cell {
    std::string text;
    Colour colour = Colour::none;
    Cell(std::string t, Colour c = Colour::none) : text(std::move(t)), colour(c) {}  // NOLINT: implicit by design
    Cell(const char* t, Colour c = Colour::none) : text(t), colour(c) {}            // NOLINT
};

// Columns as wide as their widest cell, two spaces apart, headers in bold;
// the last column is not padded. "-" stands for an empty cell.
class Table {
public:
    explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
    void add(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
    bool empty() const noexcept { return rows_.empty(); }
    void print(std::ostream& out, bool colour) const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<Cell>> rows_;
};

// `text` wrapped in the ANSI codes of `c` when `colour` is on.
std::string paint(const std::string& text, Colour c, bool colour);

// The colour of a saga phase: completed green, compensated yellow, failed
// and blocked red, in flight none.
Colour phase_colour(std::string_view phase);

// The document, indented by two, and a newline.
void print_json(std::ostream& out, const json& document);

// A time for JSON: RFC 3339 with microseconds, or null.
json json_time(const std::optional<Clock::time_point>& t);

// "-" for an empty string: tables never show a blank where a value belongs.
std::string or_dash(const std::string& s);

// `s` cut to `max` characters (UTF-8 aware enough: never splits a sequence), with "…".
std::string shorten(const std::string& s, std::size_t max);

}  // namespace boong::cli
