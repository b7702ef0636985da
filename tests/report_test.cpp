#include <gtest/gtest.h>

#include <cmath>

#include "report/report.h"
#include "report/stats.h"

namespace autoprec::report {
namespace {

TEST(ReportEscape, HtmlEscapesMarkupAndQuotes) {
  EXPECT_EQ(html_escape("<script>a&b</script> \"x\" 'y'"),
            "&lt;script&gt;a&amp;b&lt;/script&gt; &quot;x&quot; &#39;y&#39;");
  EXPECT_EQ(html_escape("plain /conv1/Conv"), "plain /conv1/Conv");
}

TEST(ReportEscape, ScriptSafeJsonHasNoClosingTagsAndParsesBack) {
  nlohmann::json v = {{"name", "</script><script>alert(1)</script>"}, {"svg", "</svg><!-- ]]>"}, {"amp", "a&b"}};
  const std::string text = script_safe_json(v);
  EXPECT_EQ(text.find('<'), std::string::npos);
  EXPECT_EQ(text.find('>'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(text), v);
}

TEST(ReportEscape, ScriptSafeJsonReplacesInvalidUtf8) {
  nlohmann::json v = std::string("bad \xff byte");
  EXPECT_NO_THROW(nlohmann::json::parse(script_safe_json(v)));
}

TEST(ReportStats, BootstrapMeanIsSeededAndCoversTheMean) {
  std::vector<uint8_t> outcomes(1000);
  for (size_t i = 0; i < outcomes.size(); ++i) outcomes[i] = i % 10 < 9;  // 90%
  auto a = bootstrap_mean(outcomes, 500, 7);
  auto b = bootstrap_mean(outcomes, 500, 7);
  auto c = bootstrap_mean(outcomes, 500, 8);
  ASSERT_TRUE(a && b && c);
  EXPECT_DOUBLE_EQ(a->value, 0.9);
  EXPECT_DOUBLE_EQ(a->low, b->low);
  EXPECT_DOUBLE_EQ(a->high, b->high);
  EXPECT_NE(a->low, c->low);
  EXPECT_LT(a->low, 0.9);
  EXPECT_GT(a->high, 0.9);
  // Binomial standard error sqrt(.9*.1/1000) = 0.0095: the 95% interval is about +-1.96 of it.
  EXPECT_NEAR(a->high - a->low, 2 * 1.96 * 0.0095, 0.008);
  EXPECT_FALSE(bootstrap_mean({}, 500, 1));
}

TEST(ReportStats, PairedDifferenceOfOneModelWithItselfIsExactlyZero) {
  std::vector<uint8_t> a = {1, 0, 1, 1, 0, 1, 0, 1};
  auto d = bootstrap_paired_difference(a, a, 200, 3);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->value, 0);
  EXPECT_EQ(d->low, 0);
  EXPECT_EQ(d->high, 0);
  std::vector<uint8_t> b = a;
  b[1] = 1;  // one more correct of 8
  d = bootstrap_paired_difference(a, b, 200, 3);
  ASSERT_TRUE(d);
  EXPECT_DOUBLE_EQ(d->value, 1.0 / 8);
  EXPECT_GE(d->low, 0);  // b is never worse than a on any example
  EXPECT_FALSE(bootstrap_paired_difference(a, {1, 0}, 200, 3));
}

TEST(ReportStats, SpearmanRanks) {
  EXPECT_DOUBLE_EQ(*spearman({1, 2, 3, 4}, {10, 20, 30, 400}), 1.0);
  EXPECT_DOUBLE_EQ(*spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // Ties take average ranks: x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4).
  EXPECT_NEAR(*spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 0.9486832980505138, 1e-12);
  EXPECT_FALSE(spearman({1, 2}, {1, 2}));
  EXPECT_FALSE(spearman({1, 1, 1}, {1, 2, 3}));
}

RunData synthetic_run() {
  RunData run;
  run.label = "r";
  run.config = {{"weight_bits", {2, 4, 8, 32}}, {"activation_bits", {8, 32}}};
  run.result = {{"final",
                 {{"layers", {{{"layer", "a"}, {"weight_bits", 32}, {"activation_bits", 32}},
                              {{"layer", "b"}, {"weight_bits", 2}, {"activation_bits", 8}},
                              {{"layer", "c"}, {"weight_bits", 8}, {"activation_bits", 8}},
                              {{"layer", "d"}, {"weight_bits", 4}, {"activation_bits", 8}}}}}}};
  nlohmann::json rows = nlohmann::json::array();
  const std::map<std::string, double> kl = {{"a", 0.9}, {"b", 0.01}, {"c", 0.5}, {"d", 0.1}};
  for (const auto& [layer, k] : kl) {
    rows.push_back({{"layer", layer}, {"tensor", "weight"}, {"bits", 2}, {"kl", k}});
    rows.push_back({{"layer", layer}, {"tensor", "weight"}, {"bits", 4}, {"kl", k / 10}});
  }
  run.sensitivity = {{"layers", {"a", "b", "c", "d"}}, {"rows", rows}};
  return run;
}

TEST(ReportLayers, ReasonsFollowBitsAndSensitivity) {
  auto rows = explain_layers(synthetic_run());
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].layer, "a");
  EXPECT_EQ(rows[0].sensitivity_rank, 1);
  EXPECT_NE(rows[0].reason.find("kept float: among the most sensitive"), std::string::npos) << rows[0].reason;
  EXPECT_EQ(rows[1].sensitivity_rank, 4);
  EXPECT_NE(rows[1].reason.find("lowered first"), std::string::npos) << rows[1].reason;
  EXPECT_NE(rows[2].reason.find("kept at 8"), std::string::npos) << rows[2].reason;
  EXPECT_DOUBLE_EQ(rows[2].sensitivity, 0.5);  // KL at the lowest weight bits measured (2), not at 4
  EXPECT_NE(rows[3].reason.find("4 bits"), std::string::npos) << rows[3].reason;
}

TEST(ReportLayers, FixedWhenTheRunAllowsOneChoice) {
  RunData run = synthetic_run();
  run.config = {{"weight_bits", {8}}, {"activation_bits", {8}}};
  for (const auto& r : explain_layers(run)) EXPECT_EQ(r.reason, "fixed: the run allows only W8 A8");
}

TEST(ReportLayers, NoSelectionNoRows) {
  RunData run;
  EXPECT_TRUE(explain_layers(run).empty());
}

}  // namespace
}  // namespace autoprec::report
