// The report formats kab writes, as one table: each format's name (the
// --format value), its file extension and its renderer. Adding a format is a
// renderer file pair and one entry in formats.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/analyzer.h"

namespace kab::report {

struct Format {
  // Renders a comparison; `color` asks for ANSI colours (only text uses them).
  using Renderer = std::string (*)(const core::Comparison& c, const core::ReportContext& ctx, bool color);

  std::string_view name;        // "text", "md", "json", "junit", "html"
  std::string_view extension;   // of the file, without the dot: "txt", "junit.xml"
  Renderer render;
};

// Every format, text first; names and extensions are unique.
const std::vector<Format>& formats();

// The format named `name`, or nullptr if there is none.
const Format* find_format(std::string_view name);

// The names in table order: {"text", "md", "json", "junit", "html"}.
std::vector<std::string> format_names();

// The names for help texts: "text, md, json, junit or html".
std::string format_list();

}  // namespace kab::report
