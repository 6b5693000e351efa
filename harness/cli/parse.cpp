#include "cli/parse.h"

#include <algorithm>
#include <iostream>

#include "cli/app.h"

namespace kab::cli {

std::optional<int> parse_args(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return k_exit_ok;
  } catch (const CLI::ParseError& e) {
    std::cerr << "kab " << app.get_name() << ": error: " << e.what() << "\n(kab " << app.get_name()
              << " --help shows the options)\n";
    return k_exit_usage;
  }
  return std::nullopt;
}

}  // namespace kab::cli
