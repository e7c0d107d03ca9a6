// Chat-template engine: a Jinja2 subset that renders Hugging Face chat templates byte for
// byte as transformers does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, tojson/raise_exception/strftime_now, {% generation %} as passthrough).
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

// Supported: if/elif/else, for (loop.*, else, `if` filter, break/continue, unpacking), set
// (incl. block set and namespace attributes), macros, filter blocks, {% generation %}; the
// expression grammar of jinja2; jinja2's filters and tests that templates use (tojson as
// transformers defines it); str/dict methods; Undefined, Markup and generator semantics.
// Not supported (a kUnsupported error naming construct and line): include/import/extends/
// block/call/with/raw tags, recursive loops, *args/**kwargs in calls, str.format, "%" formatting,
// filters/tests not in jinja_builtins.cpp / jinja_globals.cpp.
namespace strata::chat {

class Template {
 public:
  // Parses a template. Syntax errors are kInvalidArgument; tags and syntax outside the
  // supported subset are kUnsupported; both name the template line.
  static Result<Template> parse(std::string_view source);

  // Renders with `context` (a JSON object) as the template's variables. `now` feeds
  // strftime_now (local time). Runtime failures, including raise_exception() and unsupported
  // filters/tests/methods reached at run time, are errors naming the template line.
  Result<std::string> render(const nlohmann::ordered_json& context, std::time_t now) const;
  Result<std::string> render(const nlohmann::ordered_json& context) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace strata::chat
