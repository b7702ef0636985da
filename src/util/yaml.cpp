#include "util/yaml.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/eventhandler.h>

#include "util/error.h"
#include "util/text.h"

namespace autoprec::yaml {
namespace {

bool is_identifier(const std::string& key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; });
}

// Accepts the number grammar of the header; returns the text from_chars parses (no leading '+').
bool decimal_syntax(std::string_view s, bool integer_only) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (integer_only) return digits > 0 && i == s.size();
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exponent = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exponent;
    if (exponent == 0) return false;
  }
  return i == s.size();
}

std::string_view without_plus(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  return s;
}

// The byte offset of the first byte that is not part of valid UTF-8, or npos.
size_t invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return i;
    }
    if (n == 2 && c < 0xc2) return i;  // overlong
    i += n;
  }
  return std::string_view::npos;
}

// Counts the documents of a stream (at most `limit`: yaml-cpp 0.7 yields
// empty documents without end for a stray ',' at the top level, so
// YAML::LoadAll never returns) and finds the first alias.
class DocumentScan : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> documents;
  std::optional<YAML::Mark> alias;
  void OnDocumentStart(const YAML::Mark& mark) override { documents.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    if (!alias) alias = mark;
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

bool parse_number(const std::string& text, double* out) {
  if (!decimal_syntax(text, false)) return false;
  std::string_view s = without_plus(text);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool parse_integer(const std::string& text, int64_t* out) {
  if (!decimal_syntax(text, true)) return false;
  std::string_view s = without_plus(text);
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return false;
  *out = v;
  return true;
}

Node::Node(YAML::Node value, YAML::Mark mark, std::shared_ptr<const std::string> origin, std::string path)
    : value_(std::move(value)), mark_(mark), origin_(std::move(origin)), path_(std::move(path)) {}

std::string Node::what() const { return path_.empty() ? "the top level" : path_; }

std::string Node::where() const {
  if (mark_.is_null() || mark_.line < 0) return *origin_;
  return fmt::format("{}:{}", *origin_, mark_.line + 1);
}

std::string Node::describe() const {
  if (is_scalar()) return quote(value_.Scalar());
  if (is_list()) return "a list";
  if (is_map()) return "a mapping";
  return "nothing";
}

void Node::fail(const std::string& message) const { throw UserError(where() + ": " + message); }

std::vector<std::pair<std::string, Node>> Node::entries(const std::vector<std::string>& known,
                                                        bool allow_duplicates) const {
  std::vector<std::pair<std::string, Node>> out;
  if (is_null()) return out;
  if (!is_map()) {
    fail(fmt::format("{} must be a mapping{}, got {}", what(),
                     known.empty() ? "" : fmt::format(" with keys {}", fmt::join(known, ", ")), describe()));
  }
  std::set<std::string> seen;
  for (const auto& kv : value_) {
    const Node key_node(kv.first, kv.first.Mark(), origin_, path_);
    if (!kv.first.IsScalar()) {
      key_node.fail(fmt::format("keys of {} must be names, got {}", what(), key_node.describe()));
    }
    const std::string& key = kv.first.Scalar();
    if (!known.empty() && std::find(known.begin(), known.end(), key) == known.end()) {
      key_node.fail(fmt::format("unknown key {} in {}{}; valid keys are: {}", quote(key), what(),
                                did_you_mean(key, known), fmt::join(known, ", ")));
    }
    if (!allow_duplicates && !seen.insert(key).second) {
      key_node.fail(fmt::format("duplicate key {} in {}", quote(key), what()));
    }
    std::string child;
    if (!known.empty() && is_identifier(key)) {
      child = path_.empty() ? key : path_ + "." + key;
    } else {
      child = fmt::format("{}[{}]", path_, quote(key));
    }
    // yaml-cpp places an empty (null) value after its key, possibly on a
    // later line: problems with it are reported at the key.
    const YAML::Mark mark = kv.second.IsNull() ? kv.first.Mark() : kv.second.Mark();
    out.emplace_back(key, Node(kv.second, mark, origin_, child));
  }
  return out;
}

std::optional<Node> Node::find(const std::string& key) const {
  if (!is_map()) return std::nullopt;
  for (const auto& kv : value_) {
    if (!kv.first.IsScalar() || kv.first.Scalar() != key) continue;
    const YAML::Mark mark = kv.second.IsNull() ? kv.first.Mark() : kv.second.Mark();
    return Node(kv.second, mark, origin_, path_.empty() ? key : path_ + "." + key);
  }
  return std::nullopt;
}

std::vector<Node> Node::items() const {
  std::vector<Node> out;
  if (is_null()) return out;
  if (!is_list()) fail(fmt::format("{} must be a list, got {}", what(), describe()));
  for (size_t i = 0; i < value_.size(); ++i) {
    const YAML::Node item = value_[i];
    out.emplace_back(item, item.Mark().is_null() ? mark_ : item.Mark(), origin_, fmt::format("{}[{}]", path_, i));
  }
  return out;
}

const std::string& Node::text(const std::string& expected) const {
  if (!is_scalar()) fail(fmt::format("{} must be {}, got {}", what(), expected, describe()));
  return value_.Scalar();
}

std::string Node::string() const { return text("a string"); }

bool Node::boolean() const {
  const std::string& t = text("true or false");
  if (t == "true") return true;
  if (t == "false") return false;
  fail(fmt::format("{} must be true or false, got {}", what(), quote(t)));
}

double Node::number() const {
  const std::string& t = text("a number");
  double v = 0;
  if (!parse_number(t, &v)) fail(fmt::format("{} must be a finite number, got {}", what(), quote(t)));
  return v;
}

int64_t Node::integer(int64_t min, int64_t max) const {
  const std::string& t = text("an integer");
  int64_t v = 0;
  const bool ok = parse_integer(t, &v);
  if (!ok && !decimal_syntax(t, true)) fail(fmt::format("{} must be an integer, got {}", what(), quote(t)));
  if (!ok) fail(fmt::format("{} is out of range, got {}", what(), t));
  if (v < min || v > max) {
    std::string range;
    if (max == std::numeric_limits<int64_t>::max()) {
      range = fmt::format(">= {}", min);
    } else if (min == std::numeric_limits<int64_t>::min()) {
      range = fmt::format("<= {}", max);
    } else {
      range = fmt::format("in [{}, {}]", min, max);
    }
    fail(fmt::format("{} must be an integer {}, got {}", what(), range, t));
  }
  return v;
}

uint64_t Node::unsigned_integer() const {
  const std::string& t = text("an unsigned integer");
  std::string_view s = without_plus(t);
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!decimal_syntax(t, true) || t[0] == '-' || ec != std::errc() || ptr != s.data() + s.size()) {
    fail(fmt::format("{} must be an unsigned integer, got {}", what(), quote(t)));
  }
  return v;
}

size_t Node::choice(const std::vector<std::string>& names) const {
  const std::string expected = fmt::format("one of {}", fmt::join(names, ", "));
  const std::string& t = text(expected);
  for (size_t i = 0; i < names.size(); ++i) {
    if (t == names[i]) return i;
  }
  fail(fmt::format("{} must be {}, got {}{}", what(), expected, quote(t), did_you_mean(t, names)));
}

Node parse(const std::string& text, const std::string& origin, const std::string& kind) {
  auto shared_origin = std::make_shared<const std::string>(origin);
  if (const size_t bad = invalid_utf8(text); bad != std::string_view::npos) {
    const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n'));
    fail("{}:{}: the {} is not UTF-8 text (byte {})", origin, line, kind, bad);
  }
  const auto located = [&](const YAML::Mark& mark) {
    return mark.is_null() || mark.line < 0 ? origin : fmt::format("{}:{}", origin, mark.line + 1);
  };
  YAML::Node root;
  try {
    DocumentScan scan;
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    while (scan.documents.size() < 3 && parser.HandleNextDocument(scan)) {
    }
    if (scan.documents.size() > 1) {
      fail("{}: the file holds more than one YAML document (a `---` line, or a stray ',' outside brackets); a {} is one "
           "document",
           located(scan.documents[1]), kind);
    }
    if (scan.alias) fail("{}: aliases (*name) are not supported in a {}; write the value out", located(*scan.alias), kind);
    if (scan.documents.empty()) return Node(YAML::Node(), YAML::Mark::null_mark(), shared_origin, "");
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) throw UserError(fmt::format("{}: malformed YAML: {}", origin, e.msg));
    throw UserError(fmt::format("{}:{}:{}: malformed YAML: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  return Node(root, root.Mark(), shared_origin, "");
}

Node load_file(const std::string& path, const std::string& kind) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("{} {} does not exist", kind, path);
  if (std::filesystem::is_directory(path, ec)) fail("cannot read {} {}: it is a directory", kind, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {} {}: {}", kind, path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read {} {}: read error", kind, path);
  return parse(text.str(), path, kind);
}

std::vector<std::string> child_keys(const std::vector<KeyInfo>& keys, const std::string& prefix) {
  std::vector<std::string> out;
  for (const KeyInfo& k : keys) {
    if (k.path.compare(0, prefix.size(), prefix) != 0 || k.path.size() <= prefix.size()) continue;
    std::string rest = k.path.substr(prefix.size());
    std::string head = rest.substr(0, rest.find('.'));
    if (std::find(out.begin(), out.end(), head) == out.end()) out.push_back(head);
  }
  return out;
}

}  // namespace autoprec::yaml
