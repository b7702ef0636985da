// schema: the keys of each configuration format, as a table (the reference in
// docs/configuration.md is this command's --markdown output) or as JSON (the
// schema-walking test writes each key's invalid value from it).
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "quant/config.h"
#include "search/run_config.h"
#include "target/profile.h"
#include "util/error.h"

namespace autoprec::cli {
namespace {

struct SchemaCliOptions {
  std::string format;
  bool json = false;
  bool markdown = false;
};

const std::vector<std::pair<std::string, std::string>>& formats() {
  static const std::vector<std::pair<std::string, std::string>> all = {
      {"run", "run configuration (`autoprec search --config run.yaml`)"},
      {"precision", "precision config (`--precision CFG`, the search's best.yaml)"},
      {"target", "target profile (`--target FILE.yaml`, targets/)"}};
  return all;
}

std::vector<yaml::KeyInfo> schema_of(const std::string& format) {
  if (format == "run") return search::run_config_schema();
  if (format == "precision") return quant::precision_config_schema();
  if (format == "target") return target::profile_schema();
  std::vector<std::string> names;
  for (const auto& f : formats()) names.push_back(f.first);
  fail("unknown format '{}'; formats: {}", format, fmt::join(names, ", "));
}

std::string cell(std::string text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

int run_schema_command(const SchemaCliOptions& o) {
  std::vector<std::string> names;
  if (o.format.empty()) {
    for (const auto& f : formats()) names.push_back(f.first);
  } else {
    schema_of(o.format);
    names.push_back(o.format);
  }
  if (o.json) {
    nlohmann::json out = nlohmann::json::object();
    for (const std::string& name : names) {
      nlohmann::json keys = nlohmann::json::array();
      for (const yaml::KeyInfo& k : schema_of(name)) {
        keys.push_back({{"path", k.path}, {"type", k.type}, {"default", k.default_text}, {"description", k.description},
                        {"invalid", k.invalid}, {"context", k.context}});
      }
      out[name] = keys;
    }
    print_json(out);
    return 0;
  }
  for (const std::string& name : names) {
    std::string title;
    for (const auto& f : formats()) {
      if (f.first == name) title = f.second;
    }
    if (o.markdown) {
      fmt::print("### {}\n\n| key | type | default | what it does | an invalid value |\n|---|---|---|---|---|\n", title);
      for (const yaml::KeyInfo& k : schema_of(name)) {
        fmt::print("| `{}` | {} | {} | {} | `{}`{} |\n", k.path, cell(k.type), cell(k.default_text), cell(k.description),
                   cell(k.invalid), k.context.empty() ? "" : fmt::format(" (with `{}`)", cell(k.context)));
      }
      fmt::print("\n");
    } else {
      fmt::print("{}:\n", title);
      for (const yaml::KeyInfo& k : schema_of(name)) {
        fmt::print("  {:<40} {} (default {}){}\n", k.path, k.type, k.default_text,
                   k.description.empty() ? "" : ": " + k.description);
      }
    }
  }
  return 0;
}

}  // namespace

void register_schema_commands(CLI::App& app, Runner& runner) {
  static SchemaCliOptions o;
  CLI::App* cmd = app.add_subcommand("schema", "The keys of the configuration formats: type, default, meaning");
  cmd->add_option("format", o.format, "run | precision | target (default: all three)");
  cmd->add_flag("--json", o.json, "Print the keys as one JSON object");
  cmd->add_flag("--markdown", o.markdown, "Print the keys as Markdown tables (docs/configuration.md)");
  cmd->callback([&runner] { runner = [] { return run_schema_command(o); }; });
}

}  // namespace autoprec::cli
