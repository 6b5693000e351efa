#include "fio/catalog.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/text.h"
#include "proc/runner.h"

namespace kab::fio {

Catalog::Catalog(std::string fio_binary) : m_fio(std::move(fio_binary)) {
  auto [ok, out] = proc::capture({m_fio, "--cmdhelp=all"});
  if (!ok) throw std::runtime_error("cannot list fio's options with '" + m_fio + " --cmdhelp=all': " + core::trim(out));
  std::istringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = core::trim(line.substr(0, colon));
    if (!name.empty() && name.find(' ') == std::string::npos) m_names.push_back(name);
  }
  std::sort(m_names.begin(), m_names.end());
  auto [vok, v] = proc::capture({m_fio, "--version"});
  m_version = vok ? core::trim(v) : "unknown";
}

bool Catalog::knows(const std::string& option) {
  if (std::binary_search(m_names.begin(), m_names.end(), option)) return true;
  auto it = m_asked.find(option);
  if (it != m_asked.end()) return it->second;
  // fio answers "No such command: X" for names it does not know at all, and
  // describes aliases (readwrite → rw) and engine options otherwise.
  auto [ok, out] = proc::capture({m_fio, "--cmdhelp=" + option});
  bool known = out.find("No such command") == std::string::npos && !core::trim(out).empty();
  if (!known) {
    if (!m_engine_options) {
      m_engine_options.emplace();
      auto [eok, engines] = proc::capture({m_fio, "--enghelp"});
      std::istringstream es(engines);
      for (std::string engine; std::getline(es, engine);) {
        engine = core::trim(engine);
        if (engine.empty() || engine.find(' ') != std::string::npos) continue;   // "Available IO engines:"
        auto [hok, help] = proc::capture({m_fio, "--enghelp=" + engine});
        std::istringstream hs(help);
        for (std::string line; std::getline(hs, line);)
          if (auto colon = line.find(':'); colon != std::string::npos) {
            const std::string name = core::trim(line.substr(0, colon));
            // "fio: engine rados not loadable" is not an option.
            if (!name.empty() && name != "fio" && name.find(' ') == std::string::npos) m_engine_options->insert(name);
          }
      }
    }
    known = m_engine_options->count(option) > 0;
  }
  m_asked[option] = known;
  return known;
}

std::string Catalog::parse_only(const std::string& job_text) const {
  char path[] = "/tmp/kab-parse-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return "";   // cannot check here; the guest's fio still will
  {
    std::ofstream out(path, std::ios::binary);
    out << job_text;
  }
  ::close(fd);
  auto [ok, out] = proc::capture({m_fio, "--parse-only", path});
  ::unlink(path);
  return ok ? "" : (core::trim(out).empty() ? "fio --parse-only failed" : core::trim(out));
}

}  // namespace kab::fio
