#include "core/model.h"

namespace kab::core {

std::string cell_label(const Cell& cell) {
  std::string out;
  for (const auto& [k, v] : cell) {
    if (!out.empty()) out += ',';
    out += k + '=' + v;
  }
  return out;
}

}  // namespace kab::core

#include "core/sample.h"

namespace kab::core {

std::string to_string(SampleStatus s) {
  switch (s) {
    case SampleStatus::ok: return "ok";
    case SampleStatus::unhealthy: return "unhealthy";
    case SampleStatus::timeout: return "timeout";
    case SampleStatus::crashed: return "crashed";
    case SampleStatus::failed: return "failed";
  }
  return "failed";
}

std::string to_string(FailedBy f) {
  switch (f) {
    case FailedBy::none: return "";
    case FailedBy::guest: return "guest";
    case FailedBy::platform: return "platform";
  }
  return "";
}

FailedBy failed_by_from(const std::string& s) {
  return s == "guest" ? FailedBy::guest : s == "platform" ? FailedBy::platform : FailedBy::none;
}

std::optional<SampleStatus> sample_status_from(const std::string& s) {
  for (auto st : {SampleStatus::ok, SampleStatus::unhealthy, SampleStatus::timeout, SampleStatus::crashed,
                  SampleStatus::failed})
    if (to_string(st) == s) return st;
  return std::nullopt;
}

}  // namespace kab::core
