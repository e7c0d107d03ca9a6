// Minimal leveled logging to stderr, formatted with fmt. Level from --log-level or STRATA_LOG.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace strata {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_write(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  log_write(level, fmt::format(f, std::forward<Args>(args)...));
}
#define STRATA_LOG_INFO(...) ::strata::log(::strata::LogLevel::kInfo, __VA_ARGS__)
#define STRATA_LOG_WARN(...) ::strata::log(::strata::LogLevel::kWarn, __VA_ARGS__)
#define STRATA_LOG_ERROR(...) ::strata::log(::strata::LogLevel::kError, __VA_ARGS__)
#define STRATA_LOG_DEBUG(...) ::strata::log(::strata::LogLevel::kDebug, __VA_ARGS__)

}  // namespace strata
