#include "report/formats.h"

#include "report/html.h"
#include "report/json.h"
#include "report/junit.h"
#include "report/mail.h"
#include "report/markdown.h"
#include "report/summary.h"
#include "report/text.h"

namespace kab::report {

namespace {

std::string text(const core::Comparison& c, const core::ReportContext& ctx, bool color) {
  TextOptions o;
  o.color = color;
  return render_text(c, ctx, o);
}

std::string markdown(const core::Comparison& c, const core::ReportContext& ctx, bool) {
  return render_markdown(c, ctx);
}

std::string json(const core::Comparison& c, const core::ReportContext& ctx, bool) { return render_json(c, ctx); }

std::string junit(const core::Comparison& c, const core::ReportContext& ctx, bool) { return render_junit(c, ctx); }

std::string html(const core::Comparison& c, const core::ReportContext& ctx, bool) { return render_html(c, ctx); }

std::string summary(const core::Comparison& c, const core::ReportContext& ctx, bool) { return render_summary(c, ctx); }

std::string mail(const core::Comparison& c, const core::ReportContext& ctx, bool) { return render_mail(c, ctx); }

}  // namespace

const std::vector<Format>& formats() {
  static const std::vector<Format> k_formats = {
      {"text", "txt", text},
      {"md", "md", markdown},
      {"json", "json", json},
      {"junit", "junit.xml", junit},
      {"html", "html", html},
      {"summary", "summary.txt", summary},
      {"mail", "mail.txt", mail},
  };
  return k_formats;
}

const Format* find_format(std::string_view name) {
  for (const auto& f : formats())
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<std::string> format_names() {
  std::vector<std::string> names;
  for (const auto& f : formats()) names.emplace_back(f.name);
  return names;
}

std::string format_list() {
  std::string list;
  const auto& all = formats();
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i > 0) list += i + 1 == all.size() ? " or " : ", ";
    list += all[i].name;
  }
  return list;
}

}  // namespace kab::report
