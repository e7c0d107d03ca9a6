// Python str operations on UTF-8 strings, code point aware where Python is.
#include "chat/jinja_strings.h"
#include "core/utf8.h"

#include <cctype>
#include <cstdlib>

namespace strata::chat::jinja {
namespace {

uint32_t decode(std::string_view s, size_t& i) { return decode_utf8_lenient(s, i); }

void encode(std::string& out, uint32_t cp) { append_utf8(out, cp); }

struct Cp {
  uint32_t cp;
  size_t begin;
  size_t end;
};

std::vector<Cp> code_points(std::string_view s) {
  std::vector<Cp> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t b = i;
    uint32_t cp = decode(s, i);
    out.push_back({cp, b, i});
  }
  return out;
}

uint32_t to_upper(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x430 && c <= 0x44f)) return c - 32;
  if (c >= 0x450 && c <= 0x45f) return c - 80;
  if (c >= 0x3b1 && c <= 0x3c9) return c == 0x3c2 ? 0x3a3 : c - 32;
  return c;
}

uint32_t to_lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if ((c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x410 && c <= 0x42f)) return c + 32;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) return c + 32;
  return c;
}

bool is_cased_letter(uint32_t c) { return to_upper(c) != c || to_lower(c) != c; }

template <typename F>
std::string map_cps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  size_t idx = 0;
  while (i < s.size()) encode(out, f(decode(s, i), idx++));
  return out;
}

}  // namespace

bool py_isspace(uint32_t cp) {
  return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

size_t py_space_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t next = i;
    if (!py_isspace(decode(s, next))) break;
    i = next;
  }
  return i;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<Cp> cps = code_points(s);
  std::vector<uint32_t> set;
  if (chars) {
    for (const Cp& c : code_points(*chars)) set.push_back(c.cp);
  }
  auto strip_it = [&](uint32_t cp) {
    if (!chars) return py_isspace(cp);
    for (uint32_t c : set) {
      if (c == cp) return true;
    }
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b].cp)) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1].cp)) --e;
  }
  if (b >= e) return "";
  return std::string(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t at = s.find(*sep, start);
      if (at == std::string_view::npos || sep->empty()) break;
      out.emplace_back(s.substr(start, at - start));
      start = at + sep->size();
    }
    out.emplace_back(s.substr(start));
    return out;
  }
  std::vector<Cp> cps = code_points(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && py_isspace(cps[i].cp)) ++i;
    if (i >= cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = cps.size();
      while (e > i && py_isspace(cps[e - 1].cp)) --e;
      out.emplace_back(s.substr(cps[i].begin, cps[e - 1].end - cps[i].begin));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !py_isspace(cps[j].cp)) ++j;
    out.emplace_back(s.substr(cps[i].begin, cps[j - 1].end - cps[i].begin));
    i = j;
  }
  return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  if (maxsplit < 0 || !sep) {
    if (maxsplit < 0) return py_split(s, sep, -1);
    // Whitespace rsplit with a limit: split from the right on whitespace runs.
    std::vector<Cp> cps = code_points(s);
    std::vector<std::string> rev;
    int64_t e = static_cast<int64_t>(cps.size());
    while (e > 0) {
      while (e > 0 && py_isspace(cps[e - 1].cp)) --e;
      if (e <= 0) break;
      if (static_cast<int64_t>(rev.size()) >= maxsplit) {
        int64_t b = 0;
        while (b < e && py_isspace(cps[b].cp)) ++b;
        rev.emplace_back(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
        break;
      }
      int64_t b = e;
      while (b > 0 && !py_isspace(cps[b - 1].cp)) --b;
      rev.emplace_back(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
      e = b;
    }
    return std::vector<std::string>(rev.rbegin(), rev.rend());
  }
  std::vector<std::string> rev;
  size_t end = s.size();
  while (static_cast<int64_t>(rev.size()) < maxsplit && !sep->empty()) {
    if (end < sep->size()) break;
    size_t at = s.rfind(*sep, end - sep->size());
    if (at == std::string_view::npos) break;
    rev.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
    end = at;
  }
  rev.emplace_back(s.substr(0, end));
  return std::vector<std::string>(rev.rbegin(), rev.rend());
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  std::vector<Cp> cps = code_points(s);
  size_t line_start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    uint32_t c = cps[i].cp;
    bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t content_end = cps[i].begin;
    size_t next = cps[i].end;
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1].cp == '\n') {
      ++i;
      next = cps[i].end;
    }
    out.emplace_back(s.substr(line_start, (keepends ? next : content_end) - line_start));
    line_start = next;
  }
  if (line_start < s.size()) out.emplace_back(s.substr(line_start));
  return out;
}

std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s,
                       int64_t count) {
  std::string out;
  if (old_s.empty()) {
    // Python inserts `new` between every code point (and at both ends).
    std::vector<Cp> cps = code_points(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_s;
        ++done;
      }
      if (i < cps.size()) out += s.substr(cps[i].begin, cps[i].end - cps[i].begin);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old_s, start);
    if (at == std::string_view::npos) break;
    out += s.substr(start, at - start);
    out += new_s;
    start = at + old_s.size();
    ++done;
  }
  out += s.substr(start);
  return out;
}

std::string py_upper(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t) { return to_upper(c); });
}
std::string py_lower(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t) { return to_lower(c); });
}
std::string py_capitalize(std::string_view s) {
  return map_cps(s, [](uint32_t c, size_t i) { return i == 0 ? to_upper(c) : to_lower(c); });
}

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_cps(s, [&](uint32_t c, size_t) {
    uint32_t r = prev_cased ? to_lower(c) : to_upper(c);
    prev_cased = is_cased_letter(c);
    return r;
  });
}

std::string jinja_title(std::string_view s) {
  bool word_start = true;
  return map_cps(s, [&](uint32_t c, size_t) {
    bool sep = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    uint32_t r = sep ? c : (word_start ? to_upper(c) : to_lower(c));
    word_start = sep;
    return r;
  });
}

std::optional<int64_t> py_parse_int(std::string_view s) {
  std::string t = py_strip(s, nullptr, true, true);
  std::string digits;
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) digits += t[i++];
  if (i >= t.size()) return std::nullopt;
  bool last_digit = false;
  for (; i < t.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(t[i]))) {
      digits += t[i];
      last_digit = true;
    } else if (t[i] == '_' && last_digit && i + 1 < t.size()) {
      last_digit = false;
    } else {
      return std::nullopt;
    }
  }
  if (!last_digit) return std::nullopt;
  return std::strtoll(digits.c_str(), nullptr, 10);
}

std::optional<double> py_parse_float(std::string_view s) {
  std::string t = py_strip(s, nullptr, true, true);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

}  // namespace strata::chat::jinja
