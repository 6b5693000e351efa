// Small text utilities shared by every layer: sizes, durations, percentages,
// edit distance for "did you mean", positioned diagnostics, XML escaping.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kab::core {

// "512M", "1G", "4k", "1048576" → bytes (binary multiples, as fio reads them).
// Returns nullopt on anything else.
std::optional<std::uint64_t> parse_size(std::string_view s);

// "30s", "500ms", "2m", "1h", "45" (seconds) → seconds. nullopt on anything else.
std::optional<double> parse_duration(std::string_view s);

// "2%" → 0.02, "0.02" → 0.02. nullopt on anything else.
std::optional<double> parse_fraction(std::string_view s);

// Levenshtein distance, for spelling suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate to `word` when close enough to be a likely misspelling.
std::optional<std::string> suggest(std::string_view word, const std::vector<std::string>& candidates);

// A message about a position in a text file (1-based line and column).
struct Diagnostic {
  std::string file;
  int line = 0;      // 0 = no position known
  int col = 0;
  std::string message;
  std::string source_line;   // the line's text, shown with a caret under col
};

// "file:line:col: message\n<line>\n<spaces>^ near here\n" (ninja lexer style).
std::string format_diagnostic(const Diagnostic& d);

// The 1-based line `line` of `text` without its newline; "" when out of range.
std::string line_of(std::string_view text, int line);

std::string trim(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
bool starts_with(std::string_view s, std::string_view prefix);

// Human figures: "1.5 GiB", "12.3 s".
std::string human_bytes(double bytes);
std::string human_seconds(double s);

// `s` as XML text or attribute value (also fine for HTML): & < > " ' become
// entities; control characters XML 1.0 forbids even escaped (below 0x20 but
// tab, newline, carriage return) become '?'. Other bytes, UTF-8 included, pass.
std::string xml_escape(std::string_view s);

}  // namespace kab::core
