// CLI11 glue shared by the subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kab::cli {

// Parses args (in order) into app. Returns an exit code when kab should stop
// now (--help printed: 0; bad usage: 2), nullopt to go on.
std::optional<int> parse_args(CLI::App& app, const std::vector<std::string>& args);

}  // namespace kab::cli
