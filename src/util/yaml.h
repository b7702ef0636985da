// The one strict YAML reader behind every configuration file autoprec reads:
// precision configs, run configurations and target profiles.
//
// One grammar for all of them (docs/configuration.md):
//   - a file is one YAML document (none: every key takes its default);
//   - keys are names; a key unknown where it appears is an error naming the
//     valid keys, with "did you mean" for a near miss; a key given twice in
//     one mapping is an error (except where a format says later entries win);
//   - booleans are `true` or `false`, nothing else;
//   - integers are [+-]?[0-9]+; numbers are decimal
//     [+-]?(digits[.digits]|.digits)([eE][+-]?digits)? and finite, parsed
//     independently of the locale (no .inf, .nan, hex or octal);
//   - a key with nothing after it (`layers:`) is an empty section.
// Every error is an autoprec::UserError with one line "ORIGIN:LINE: message"
// (LINE 1-based; left out when the node has no position).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace autoprec::yaml {

class Node {
 public:
  Node() = default;
  Node(YAML::Node value, YAML::Mark mark, std::shared_ptr<const std::string> origin, std::string path);

  bool is_null() const { return !value_ || value_.IsNull(); }
  bool is_map() const { return value_ && value_.IsMap(); }
  bool is_list() const { return value_ && value_.IsSequence(); }
  bool is_scalar() const { return value_ && value_.IsScalar(); }

  // Where the node sits: "ddpg.tau", "layers['conv1'].weight_bits",
  // "constraints[2]"; "the top level" at the root.
  std::string what() const;
  const std::string& path() const { return path_; }
  const std::string& origin() const { return *origin_; }
  // "ORIGIN:LINE" (or ORIGIN without a position).
  std::string where() const;
  // 'text' for a scalar, "a list", "a mapping" or "nothing".
  std::string describe() const;

  // Throws UserError "ORIGIN:LINE: message".
  [[noreturn]] void fail(const std::string& message) const;

  // The entries of a mapping in file order (none for null). Keys must be
  // scalars; with `known` non-empty each key must be one of them; keys are
  // unique unless `allow_duplicates`. A child's path is `what().key` for known
  // keys and `what()['key']` for names (known empty).
  std::vector<std::pair<std::string, Node>> entries(const std::vector<std::string>& known,
                                                    bool allow_duplicates = false) const;
  // The value of `key` in a mapping (its first occurrence), if present.
  std::optional<Node> find(const std::string& key) const;
  // The elements of a list (none for null).
  std::vector<Node> items() const;

  // Scalars. Each fails with "WHAT must be EXPECTED, got DESCRIPTION".
  const std::string& text(const std::string& expected) const;  // any scalar
  std::string string() const;                                   // "a string"
  bool boolean() const;                                         // true | false
  double number() const;                                        // finite decimal
  int64_t integer(int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  uint64_t unsigned_integer() const;
  // Index of the scalar in `names` ("must be one of a, b, got 'x' (did you mean 'a'?)").
  size_t choice(const std::vector<std::string>& names) const;

 private:
  YAML::Node value_;
  YAML::Mark mark_;
  std::shared_ptr<const std::string> origin_ = std::make_shared<const std::string>("");
  std::string path_;
};

// Parses one document; `kind` ("run configuration") names the format in the
// error for a file with several documents. UserError for malformed YAML.
Node parse(const std::string& text, const std::string& origin, const std::string& kind);
// Reads `path` and parses it; UserError naming `kind` when it cannot be read.
Node load_file(const std::string& path, const std::string& kind);

// The number grammar above, for values that do not come from YAML (command-line flags).
bool parse_number(const std::string& text, double* out);
bool parse_integer(const std::string& text, int64_t* out);

// ---------------------------------------------------------------------------
// Schemas: a format's keys as data. The reader, the configuration reference
// in docs/ (`autoprec schema FORMAT --markdown`) and the test that writes an
// invalid value into every key (tests/schema_test.sh) all use the one list.

struct KeyInfo {
  std::string path;          // "ddpg.tau"; a `*` component stands for any name ("layers.*.weight_bits")
  std::string type;          // "number in (0, 1]"
  std::string default_text;  // "0.01", or how the default adapts
  std::string description;
  std::string invalid;       // a YAML value the reader (or the check before any work) refuses
  std::string context;       // sibling keys the invalid value needs, as a YAML flow mapping ("{type: lut}")
};

template <typename T>
struct Key : KeyInfo {
  // Reads the node into the target; empty for keys documented here but read
  // by the reader of a key above them.
  std::function<void(const Node&, T&)> read;
};

// Builds the rows of a key table: `const yaml::KeyFactory<Config> key;` then
// key("ddpg.tau", "number in (0, 1]", "0.01", "soft target update", "0", reader).
template <typename T>
struct KeyFactory {
  Key<T> operator()(std::string path, std::string type, std::string default_text, std::string description,
                    std::string invalid, std::function<void(const Node&, T&)> read, std::string context = "") const {
    Key<T> k;
    k.path = std::move(path);
    k.type = std::move(type);
    k.default_text = std::move(default_text);
    k.description = std::move(description);
    k.invalid = std::move(invalid);
    k.context = std::move(context);
    k.read = std::move(read);
    return k;
  }
};

// The keys of `keys` that sit directly under `prefix` ("" or "ddpg."), in order, without duplicates.
std::vector<std::string> child_keys(const std::vector<KeyInfo>& keys, const std::string& prefix);

template <typename T>
std::vector<KeyInfo> infos(const std::vector<Key<T>>& keys) {
  return std::vector<KeyInfo>(keys.begin(), keys.end());
}

// Reads a mapping by the schema: each entry is a key with a reader (called),
// or a section (a mapping read the same way one level down). Unknown and
// duplicate keys are errors.
template <typename T>
void read_keys(const Node& node, const std::vector<Key<T>>& keys, T& out, const std::string& prefix = "") {
  const std::vector<KeyInfo> all = infos(keys);
  for (const auto& [key, value] : node.entries(child_keys(all, prefix))) {
    const std::string path = prefix + key;
    bool read = false;
    for (const Key<T>& k : keys) {
      if (k.path == path && k.read) {
        k.read(value, out);
        read = true;
        break;
      }
    }
    if (read) continue;
    if (!value.is_map() && !value.is_null()) value.fail(value.what() + " must be a mapping, got " + value.describe());
    read_keys(value, keys, out, path + ".");
  }
}

}  // namespace autoprec::yaml
