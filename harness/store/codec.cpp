#include "store/codec.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <system_error>
#include <utility>

namespace kab::store {

namespace {

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void json_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";  // JSON has no NaN or infinity; null reads back as NaN
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void json_value(std::string& out, const std::string& v) { json_string(out, v); }
void json_value(std::string& out, double v) { json_number(out, v); }

template <typename Pairs>
std::string json_object(const Pairs& pairs) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : pairs) {
    if (!first) out += ',';
    first = false;
    json_string(out, k);
    out += ':';
    json_value(out, v);
  }
  return out + "}";
}

// A value of the flat shapes: a string, a number (or null), or a container
// of them.
struct JsonScalar {
  bool is_string = false;
  std::string text;
  double number = 0;
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : m_s(s) {}

  // Calls on_item(key, value) for each member of an object.
  template <typename F>
  bool object(F on_item) {
    if (!eat('{')) return false;
    if (eat('}')) return end();
    do {
      std::string key;
      JsonScalar value;
      if (!string(key) || !eat(':') || !scalar(value)) return false;
      on_item(std::move(key), std::move(value));
    } while (eat(','));
    return eat('}') && end();
  }

  template <typename F>
  bool array(F on_item) {
    if (!eat('[')) return false;
    if (eat(']')) return end();
    do {
      JsonScalar value;
      if (!scalar(value)) return false;
      on_item(std::move(value));
    } while (eat(','));
    return eat(']') && end();
  }

 private:
  void ws() {
    while (m_i < m_s.size() && (m_s[m_i] == ' ' || m_s[m_i] == '\n' || m_s[m_i] == '\t' || m_s[m_i] == '\r'))
      ++m_i;
  }
  bool eat(char c) {
    ws();
    if (m_i < m_s.size() && m_s[m_i] == c) {
      ++m_i;
      return true;
    }
    return false;
  }
  bool end() {
    ws();
    return m_i == m_s.size();
  }
  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool hex4(unsigned& cp) {
    if (m_i + 4 > m_s.size()) return false;
    auto r = std::from_chars(m_s.data() + m_i, m_s.data() + m_i + 4, cp, 16);
    if (r.ptr != m_s.data() + m_i + 4) return false;
    m_i += 4;
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    while (m_i < m_s.size()) {
      char c = m_s[m_i++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (m_i >= m_s.size()) return false;
      char e = m_s[m_i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && m_i + 1 < m_s.size() && m_s[m_i] == '\\' && m_s[m_i + 1] == 'u') {
            m_i += 2;
            unsigned lo = 0;
            if (!hex4(lo)) return false;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool scalar(JsonScalar& v) {
    ws();
    if (m_i < m_s.size() && m_s[m_i] == '"') {
      v.is_string = true;
      return string(v.text);
    }
    if (m_s.substr(m_i, 4) == "null") {
      m_i += 4;
      v.number = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    auto r = std::from_chars(m_s.data() + m_i, m_s.data() + m_s.size(), v.number);
    if (r.ec != std::errc{}) return false;
    m_i = static_cast<std::size_t>(r.ptr - m_s.data());
    return true;
  }

  std::string_view m_s;
  std::size_t m_i = 0;
};

}  // namespace

std::string encode_string_map(const std::map<std::string, std::string>& m) { return json_object(m); }

std::string encode_cell(const core::Cell& cell) { return json_object(cell); }

std::string encode_string_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    json_string(out, v[i]);
  }
  return out + "]";
}

std::string encode_number_map(const std::map<std::string, double>& m) { return json_object(m); }

std::optional<std::map<std::string, std::string>> decode_string_map(std::string_view json) {
  std::map<std::string, std::string> out;
  if (!JsonReader(json).object([&](std::string k, JsonScalar v) { out[std::move(k)] = std::move(v.text); }))
    return std::nullopt;
  return out;
}

std::optional<core::Cell> decode_cell(std::string_view json) {
  core::Cell out;
  if (!JsonReader(json).object([&](std::string k, JsonScalar v) { out.emplace_back(std::move(k), std::move(v.text)); }))
    return std::nullopt;
  return out;
}

std::optional<std::vector<std::string>> decode_string_list(std::string_view json) {
  std::vector<std::string> out;
  if (!JsonReader(json).array([&](JsonScalar v) { out.push_back(std::move(v.text)); })) return std::nullopt;
  return out;
}

std::optional<std::map<std::string, double>> decode_number_map(std::string_view json) {
  std::map<std::string, double> out;
  if (!JsonReader(json).object([&](std::string k, JsonScalar v) { out[std::move(k)] = v.number; }))
    return std::nullopt;
  return out;
}

}  // namespace kab::store
