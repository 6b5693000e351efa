#include "cli/parse.h"

#include <algorithm>
#include <iostream>

#include "cli/app.h"
#include "core/text.h"

namespace kab::cli {

namespace {

void option_names(const CLI::App& app, std::vector<std::string>& out) {
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& l : o->get_lnames()) out.push_back("--" + l);
    for (const auto& s : o->get_snames()) out.push_back("-" + s);
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) option_names(*sub, out);
}

std::string describe_extra(const CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> names;
  option_names(app, names);
  for (const auto& a : args) {
    if (a.size() < 2 || a[0] != '-') continue;
    const std::string name = a.substr(0, a.find('='));
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    std::string msg = "unknown option '" + name + "'";
    if (auto s = core::suggest(name, names)) msg += ", did you mean '" + *s + "'?";
    return msg;
  }
  std::vector<std::string> extra = app.remaining();
  std::string list;
  for (const auto& a : args)
    if (std::find(extra.begin(), extra.end(), a) != extra.end()) list += (list.empty() ? "" : " ") + a;
  return "unexpected argument" + std::string(extra.size() > 1 ? "s: " : ": ") + (list.empty() ? "?" : list);
}

}  // namespace

std::optional<int> parse_args(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ExtrasError& e) {
    // CLI11 lists the extras reversed and offers no suggestion: name the
    // first one in the order typed, with "did you mean" for a misspelt option.
    std::cerr << "kab " << app.get_name() << ": error: " << describe_extra(app, args) << "\n(kab " << app.get_name()
              << " --help shows the options)\n";
    return k_exit_usage;
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
