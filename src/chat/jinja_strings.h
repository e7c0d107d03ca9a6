// Python str operations on UTF-8 strings (strip, split, splitlines, replace, case mapping,
// int()/float() parsing) as chat templates call them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::chat::jinja {

// str.strip/lstrip/rstrip; chars == nullptr strips Python whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);
// str.split / str.rsplit; sep == nullptr splits on whitespace runs.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, int64_t maxsplit);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends = false);
std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s,
                       int64_t count);
// Case mapping for ASCII and Latin-1/Greek/Cyrillic letters (two-byte UTF-8).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);
// jinja2's title filter: capitalizes after whitespace and -([{<.
std::string jinja_title(std::string_view s);
std::optional<int64_t> py_parse_int(std::string_view s);
std::optional<double> py_parse_float(std::string_view s);
bool py_isspace(uint32_t cp);
// Bytes of Python whitespace at the start of s.
size_t py_space_prefix(std::string_view s);

}  // namespace strata::chat::jinja
