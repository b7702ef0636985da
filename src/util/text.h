// Text helpers for one-line messages and name matching, shared by every
// reader of user files (configurations, profiles, datasets).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace autoprec {

// A user-supplied string quoted for a one-line message: 'name', with
// control characters, quotes and backslashes escaped.
std::string quote(std::string_view s);

// Levenshtein distance (insertions, deletions, substitutions).
size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for the candidate closest to `key` when it is within
// max(2, |key| / 3) edits, else "".
std::string did_you_mean(std::string_view key, const std::vector<std::string>& candidates);

// "a, b, c, ... and N more" (at most `limit` names).
std::string list_names(const std::vector<std::string>& names, size_t limit = 8);

// "2, 3, 4".
std::string join_ints(const std::set<int>& values);

// fnmatch(3)-style glob without flags: `*` any run of characters (including
// '.' and '/'), `?` one character, `[abc]`, `[a-z]`, `[!a]` or `[^a]` one
// character in/not in a set, `\x` a literal x; a `[` with no closing `]` is
// literal. A key without any of `*?[` is a literal name (is_pattern false).
bool is_pattern(const std::string& key);
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace autoprec
