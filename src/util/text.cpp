#include "util/text.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace autoprec {
namespace {

// Matches one bracket expression starting at pattern[i] == '['. Returns the
// index just past the closing ']' and sets `matched`, or npos if the bracket
// is not closed (then '[' is literal).
size_t match_bracket(const std::string& pattern, size_t i, unsigned char c, bool& matched) {
  size_t j = i + 1;
  bool negate = false;
  if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
    negate = true;
    ++j;
  }
  bool found = false;
  bool first = true;
  while (j < pattern.size()) {
    if (pattern[j] == ']' && !first) {
      matched = found != negate;
      return j + 1;
    }
    first = false;
    unsigned char lo = static_cast<unsigned char>(pattern[j]);
    if (lo == '\\' && j + 1 < pattern.size()) lo = static_cast<unsigned char>(pattern[++j]);
    ++j;
    unsigned char hi = lo;
    if (j + 1 < pattern.size() && pattern[j] == '-' && pattern[j + 1] != ']') {
      hi = static_cast<unsigned char>(pattern[j + 1]);
      j += 2;
      if (hi == '\\' && j < pattern.size()) hi = static_cast<unsigned char>(pattern[j++]);
    }
    if (lo <= c && c <= hi) found = true;
  }
  return std::string::npos;
}

}  // namespace

std::string quote(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(std::string_view key, const std::vector<std::string>& candidates) {
  const size_t threshold = std::max<size_t>(2, key.size() / 3);
  size_t best = threshold + 1;
  std::string_view best_name;
  for (const auto& candidate : candidates) {
    const size_t d = edit_distance(key, candidate);
    if (d < best) {
      best = d;
      best_name = candidate;
    }
  }
  if (best > threshold) return "";
  return fmt::format(" (did you mean {}?)", quote(best_name));
}

std::string list_names(const std::vector<std::string>& names, size_t limit) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += fmt::format(" and {} more", names.size() - limit);
  return out;
}

std::string join_ints(const std::set<int>& values) { return fmt::format("{}", fmt::join(values, ", ")); }

bool is_pattern(const std::string& key) {
  return key.find_first_of("*?[") != std::string::npos;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher: on a mismatch, retry from the last '*' with it
  // consuming one more character (linear backtracking, no recursion).
  size_t p = 0, n = 0;
  size_t star_p = std::string::npos, star_n = 0;
  while (n < name.size()) {
    bool advanced = false;
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++n;
        advanced = true;
      } else if (pc == '[') {
        bool matched = false;
        const size_t end = match_bracket(pattern, p, static_cast<unsigned char>(name[n]), matched);
        if (end == std::string::npos) {
          if (name[n] == '[') {
            ++p;
            ++n;
            advanced = true;
          }
        } else if (matched) {
          p = end;
          ++n;
          advanced = true;
        }
      } else {
        char literal = pc;
        size_t next = p + 1;
        if (pc == '\\' && p + 1 < pattern.size()) {
          literal = pattern[p + 1];
          next = p + 2;
        }
        if (literal == name[n]) {
          p = next;
          ++n;
          advanced = true;
        }
      }
    }
    if (!advanced) {
      if (star_p == std::string::npos) return false;
      p = star_p + 1;
      n = ++star_n;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace autoprec
