#include "core/fio_job.h"

#include <algorithm>
#include <filesystem>
#include <map>

namespace kab::core {

namespace {

bool is_comment(std::string_view s) { return s.empty() || s[0] == ';' || s[0] == '#'; }

// The paths of a fio value naming files or directories (':' separates several;
// '\:' escapes a colon in a name).
std::vector<std::string> path_list(const std::string& value) {
  std::vector<std::string> out(1);
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == ':') {
      out.back() += ':';
      ++i;
    } else if (value[i] == ':') out.emplace_back();
    else out.back() += value[i];
  }
  return out;
}

bool inside_share(const std::string& path) {
  const std::string share = k_share_dir;
  const std::string p = std::filesystem::path(path).lexically_normal().string();
  return p == share || p == share + "/" || starts_with(p, share + "/");
}

std::string option_line(const std::string& key, const std::string& value, bool flag) {
  return flag || value.empty() ? key + "\n" : key + "=" + value + "\n";
}

}  // namespace

FioJobFile parse_fio_job_file(const std::string& path, const std::string& text, std::vector<Diagnostic>& errors) {
  FioJobFile f;
  f.path = path;
  f.text = text;
  const auto lines = split(text, '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const int ln = static_cast<int>(i) + 1;
    std::string raw = lines[i];
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    const std::size_t lead = raw.find_first_not_of(" \t");
    if (lead == std::string::npos) continue;
    const std::string body = trim(raw);
    if (is_comment(body)) continue;
    if (body[0] == '[') {
      const std::size_t close = body.find(']');
      if (close == std::string::npos || close == 1) {
        errors.push_back({path, ln, static_cast<int>(lead) + 1, "a section header needs a name: [name]", raw});
        continue;
      }
      f.sections.push_back({body.substr(1, close - 1), ln, {}});
      continue;
    }
    if (f.sections.empty()) f.sections.push_back({"global", 0, {}});
    FioJobLine o;
    o.line = ln;
    o.col = static_cast<int>(lead) + 1;
    const std::size_t eq = raw.find('=', lead);
    if (eq == std::string::npos) {
      o.key = body;
      o.flag = true;
    } else {
      o.key = trim(raw.substr(lead, eq - lead));
      const std::size_t vstart = raw.find_first_not_of(" \t", eq + 1);
      o.value = vstart == std::string::npos ? "" : trim(raw.substr(vstart));
      o.value_col = static_cast<int>(vstart == std::string::npos ? eq + 1 : vstart) + 1;
    }
    f.sections.back().options.push_back(o);
  }
  return f;
}

std::vector<Diagnostic> check_fio_job_targets(const FioJobFile& file) {
  std::vector<Diagnostic> out;
  const std::string lines_text = file.text;
  for (const auto& sec : file.sections)
    for (const auto& o : sec.options) {
      if (o.key != "directory" && o.key != "filename" && o.key != "opendir") continue;
      for (const auto& p : path_list(o.value)) {
        if (p.empty()) continue;
        // Relative names are taken in the share (the agent runs fio there, and
        // kab's [global] sets it as the directory): ".." may still leave it.
        const std::string where =
            p[0] == '/' ? p : (std::filesystem::path(k_share_dir) / p).lexically_normal().string();
        std::string why;
        if (starts_with(where, "/dev/"))
          why = o.key + "=" + p + " is a device: kab measures files on the virtio-fs share; name a file instead "
                                  "(e.g. filename=testfile), which kab creates in the share";
        else if (!inside_share(where))
          why = o.key + "=" + p + " is outside the share: kab runs every job in " + k_share_dir +
                "; remove the line (or give a relative " + o.key + ")";
        if (!why.empty()) out.push_back({file.path, o.line, o.value_col ? o.value_col : o.col, why, line_of(lines_text, o.line)});
      }
    }
  return out;
}

std::string fio_job_file_text(const FioJobFile& file, const FioOptions& overrides) {
  std::string out = "; " + (file.path.empty() ? std::string("job file") : file.path) + " as kab runs it";
  if (!overrides.empty()) {
    out += " (fio.override:";
    for (const auto& [k, v] : overrides) out += " " + (v.empty() ? k : k + "=" + v);
    out += ")";
  }
  out += "\n[global]\ndirectory=" + std::string(k_share_dir) + "\ngroup_reporting\n";
  for (const auto& sec : file.sections) {
    out += "\n[" + sec.name + "]\n";
    const bool job = sec.name != "global";
    for (const auto& o : sec.options) {
      if (job && std::any_of(overrides.begin(), overrides.end(), [&](const auto& ov) { return ov.first == o.key; }))
        continue;   // replaced below
      out += option_line(o.key, o.value, o.flag);
    }
    if (job)
      for (const auto& [k, v] : overrides) out += option_line(k, v, v.empty());
  }
  return out;
}

std::string fio_job_text(const FioSpec& fio, const Cell& cell, const std::string& directory) {
  FioOptions opts = fio.job;
  for (const auto& [k, v] : cell) {
    auto it = std::find_if(opts.begin(), opts.end(), [&](const auto& o) { return o.first == k; });
    if (it != opts.end()) it->second = v;
    else opts.emplace_back(k, v);
  }
  bool has_target = std::any_of(opts.begin(), opts.end(), [](const auto& o) {
    return o.first == "filename" || o.first == "directory";
  });
  bool grouped = std::any_of(opts.begin(), opts.end(), [](const auto& o) { return o.first == "group_reporting"; });
  std::string text = "; generated by kab\n[global]\n";
  if (!has_target) text += "directory=" + directory + "\n";
  // Every job of the sample in one report: numjobs=4 is measured whole.
  if (!grouped) text += "group_reporting\n";
  for (const auto& [k, v] : opts) text += v.empty() ? k + "\n" : k + "=" + v + "\n";
  text += "\n[kab]\n";
  return text;
}

double longest_run_s(const FioJobFile& file) {
  auto seconds = [](const std::map<std::string, std::string>& o, const char* key) {
    auto it = o.find(key);
    return it == o.end() ? 0.0 : parse_duration(it->second).value_or(0);
  };
  std::map<std::string, std::string> global;
  std::vector<double> groups;
  for (const auto& sec : file.sections) {
    const bool is_global = sec.name.rfind("global", 0) == 0;
    std::map<std::string, std::string> o = global;
    bool new_group = false;
    for (const auto& line : sec.options) {
      o[line.key] = line.value;
      new_group |= line.key == "stonewall" || line.key == "wait_for_previous";
    }
    if (is_global) {
      global = o;
      continue;
    }
    const double run = std::max(seconds(o, "runtime"), seconds(o, "timeout"));
    const double t = run + seconds(o, "ramp_time") + seconds(o, "startdelay");
    if (groups.empty() || new_group) groups.push_back(0);
    groups.back() = std::max(groups.back(), t);
  }
  double total = 0;
  for (double g : groups) total += g;
  return total;
}

std::uint64_t total_size_bytes(const FioJobFile& file) {
  auto get = [](const std::map<std::string, std::string>& o, const char* key) -> std::string {
    auto it = o.find(key);
    return it == o.end() ? "" : it->second;
  };
  auto number = [](const std::string& v, std::uint64_t fallback) {
    if (v.empty()) return fallback;
    return parse_size(v).value_or(fallback);
  };
  std::map<std::string, std::string> global;
  std::uint64_t total = 0;
  for (const auto& sec : file.sections) {
    std::map<std::string, std::string> o = global;
    for (const auto& line : sec.options) o[line.key] = line.value;
    if (sec.name.rfind("global", 0) == 0) {
      global = o;
      continue;
    }
    std::uint64_t per_job = number(get(o, "size"), 0);
    if (per_job == 0) per_job = number(get(o, "filesize"), 0) * number(get(o, "nrfiles"), 1);
    total += per_job * number(get(o, "numjobs"), 1);
  }
  return total;
}

std::string fio_job_for(const FioSpec& fio, const Cell& cell) {
  if (fio.job_file.empty()) return fio_job_text(fio, cell);
  std::vector<Diagnostic> ignored;   // reported when the scenario was read
  return fio_job_file_text(parse_fio_job_file(fio.job_file, fio.job_file_text, ignored), fio.override);
}

}  // namespace kab::core
