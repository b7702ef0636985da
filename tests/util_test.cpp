// The strict YAML reader, the text helpers, the operator-traits table and
// the example counts that adapt to the data.
#include <gtest/gtest.h>

#include <string>

#include "data/dataset.h"
#include "graph/ir.h"
#include "graph/op_traits.h"
#include "util/error.h"
#include "util/text.h"
#include "util/yaml.h"
#include "test_helpers.h"

namespace autoprec {
namespace {

using testing::error_of;

yaml::Node scalar(const std::string& text) {
  return yaml::parse("k: " + text + "\n", "t.yaml", "test file").entries({"k"}).at(0).second;
}

TEST(Yaml, OneNumberGrammar) {
  for (const char* good : {"0", "-1", "+2", "1.5", ".5", "5.", "1e-3", "-2.5E+4", "0.0001"}) {
    EXPECT_NO_THROW(scalar(good).number()) << good;
  }
  for (const char* bad : {".nan", ".inf", "-.inf", "nan", "inf", "0x10", "1_000", "1,5", "e5", "1e", "--1", "1.2.3", "+"}) {
    EXPECT_NE(error_of([&] { scalar(bad).number(); }).find("must be a finite number"), std::string::npos) << bad;
  }
  double v = 0;
  EXPECT_TRUE(yaml::parse_number("2.5e-1", &v));
  EXPECT_DOUBLE_EQ(v, 0.25);
  EXPECT_EQ(scalar("42").integer(0, 100), 42);
  EXPECT_NE(error_of([] { scalar("4.0").integer(); }).find("must be an integer, got '4.0'"), std::string::npos);
  EXPECT_NE(error_of([] { scalar("0").integer(1); }).find("k must be an integer >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([] { scalar("99999999999999999999").integer(); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { scalar("-1").unsigned_integer(); }).find("unsigned"), std::string::npos);
}

TEST(Yaml, BooleansAreTrueOrFalse) {
  EXPECT_TRUE(scalar("true").boolean());
  EXPECT_FALSE(scalar("false").boolean());
  for (const char* bad : {"yes", "no", "on", "off", "True", "FALSE", "1", "0", "y"}) {
    EXPECT_NE(error_of([&] { scalar(bad).boolean(); }).find("must be true or false"), std::string::npos) << bad;
  }
}

TEST(Yaml, KeysAreKnownUniqueAndLocated) {
  const yaml::Node root = yaml::parse("alpha: 1\nbeta:\n  gamma: 2\n", "t.yaml", "test file");
  EXPECT_EQ(error_of([&] { root.entries({"alpha", "betta"}); }),
            "t.yaml:2: unknown key 'beta' in the top level (did you mean 'betta'?); valid keys are: alpha, betta");
  const auto entries = root.entries({"alpha", "beta"});
  const yaml::Node gamma = entries[1].second.entries({"gamma"})[0].second;
  EXPECT_EQ(gamma.what(), "beta.gamma");
  EXPECT_EQ(gamma.where(), "t.yaml:3");
  EXPECT_NE(error_of([] { yaml::parse("a: 1\na: 2\n", "t.yaml", "test file").entries({"a"}); })
                .find("t.yaml:2: duplicate key 'a'"),
            std::string::npos);
  EXPECT_NO_THROW(yaml::parse("a: 1\na: 2\n", "t.yaml", "test file").entries({}, true));
  // Names (no fixed key set) are quoted in paths.
  const auto names = yaml::parse("\"x y\": {k: 1}\n", "t.yaml", "test file").entries({});
  EXPECT_EQ(names[0].second.entries({"k"})[0].second.what(), "['x y'].k");
}

TEST(Yaml, DocumentsAndEncoding) {
  EXPECT_NE(error_of([] { yaml::parse("a: 1\n---\nb: 2\n", "t.yaml", "run configuration"); })
                .find("t.yaml:2: the file holds more than one YAML document"),
            std::string::npos);
  // yaml-cpp 0.7 loops for ever on a stray top-level ',' (found by the fuzzer): refused instead.
  for (const char* stray : {", a: 8}\n", "\"x\", y\n", "# c\n, a\n"}) {
    EXPECT_NE(error_of([&] { yaml::parse(stray, "t.yaml", "test file"); }).find("more than one YAML document"),
              std::string::npos)
        << stray;
  }
  EXPECT_NE(error_of([] { yaml::parse("a: &x 1\nb: *x\n", "t.yaml", "test file"); })
                .find("t.yaml:2: aliases (*name) are not supported"),
            std::string::npos);
  EXPECT_NE(error_of([] { yaml::parse("a: [1\n", "t.yaml", "test file"); }).find("t.yaml:2"), std::string::npos);
  EXPECT_NE(error_of([] { yaml::parse("a: 1\nb: \xff\n", "t.yaml", "test file"); }).find("t.yaml:2: the test file is not UTF-8"),
            std::string::npos);
  EXPECT_TRUE(yaml::parse("", "t.yaml", "test file").is_null());
  EXPECT_NO_THROW(yaml::parse("name: caf\xc3\xa9\n", "t.yaml", "test file"));
}

TEST(Yaml, ChoiceSuggests) {
  EXPECT_EQ(scalar("qdq").choice({"int", "qdq"}), 1u);
  EXPECT_EQ(error_of([] { scalar("itn").choice({"int", "qdq"}); }),
            "t.yaml:1: k must be one of int, qdq, got 'itn' (did you mean 'int'?)");
}

struct Sample {
  int a = 0;
  double b = 0;
};

TEST(Yaml, SchemaReadsSectionsAndRefusesUnknownKeys) {
  std::vector<yaml::Key<Sample>> keys(2);
  keys[0].path = "a";
  keys[0].read = [](const yaml::Node& n, Sample& s) { s.a = static_cast<int>(n.integer()); };
  keys[1].path = "sec.b";
  keys[1].read = [](const yaml::Node& n, Sample& s) { s.b = n.number(); };
  Sample s;
  yaml::read_keys(yaml::parse("a: 3\nsec: {b: 0.5}\n", "t.yaml", "test file"), keys, s);
  EXPECT_EQ(s.a, 3);
  EXPECT_DOUBLE_EQ(s.b, 0.5);
  EXPECT_NE(error_of([&] { yaml::read_keys(yaml::parse("sec: {c: 1}\n", "t.yaml", "test file"), keys, s); })
                .find("unknown key 'c' in sec"),
            std::string::npos);
  EXPECT_NE(error_of([&] { yaml::read_keys(yaml::parse("sec: 4\n", "t.yaml", "test file"), keys, s); })
                .find("sec must be a mapping"),
            std::string::npos);
  EXPECT_EQ(yaml::child_keys(yaml::infos(keys), ""), (std::vector<std::string>{"a", "sec"}));
}

TEST(Text, QuoteSuggestGlob) {
  EXPECT_EQ(quote("a'b\n"), "'a\\'b\\n'");
  EXPECT_EQ(did_you_mean("episodez", {"episodes", "seed"}), " (did you mean 'episodes'?)");
  EXPECT_EQ(did_you_mean("zzz", {"episodes"}), "");
  EXPECT_TRUE(glob_match("layer3.*", "layer3.0.conv"));
  EXPECT_FALSE(glob_match("layer3.*", "layer30"));
}

TEST(Errors, InternalChecksThrowInternalError) {
  EXPECT_THROW(AUTOPREC_CHECK(1 + 1 == 3, "arithmetic broke: {}", 2), InternalError);
  EXPECT_NO_THROW(AUTOPREC_CHECK(true, "never"));
  try {
    AUTOPREC_CHECK(false, "layer count {}", 7);
  } catch (const InternalError& e) {
    EXPECT_NE(std::string(e.what()).find("layer count 7"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("util_test.cpp"), std::string::npos);
  }
}

TEST(OpTraits, OneRowPerQuantizableKind) {
  EXPECT_EQ(graph::weighted_op_names(), (std::vector<std::string>{"Conv", "Gemm", "MatMul"}));
  graph::Node gemm;
  gemm.op_type = "Gemm";
  const graph::WeightedOpTraits* t = graph::weighted_op(gemm);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->weight_input, 1);
  EXPECT_EQ(t->bias_input, 2);
  EXPECT_EQ(t->channel_axis(gemm, {64, 10}), 1);      // B is [K, N]
  EXPECT_EQ(t->macs_per_output(gemm, {64, 10}), 64);
  EXPECT_TRUE(t->accepts(gemm, 2));
  graph::Node conv;
  conv.op_type = "Conv";
  EXPECT_EQ(graph::weighted_op(conv)->macs_per_output(conv, {16, 8, 3, 3}), 72);
  graph::Node matmul;
  matmul.op_type = "MatMul";
  EXPECT_EQ(graph::weighted_op(matmul)->channel_axis(matmul, {4, 32, 16}), 2);
  EXPECT_EQ(graph::weighted_op(matmul)->bias_input, -1);
  graph::Node relu;
  relu.op_type = "Relu";
  EXPECT_EQ(graph::weighted_op(relu), nullptr);
  graph::Node custom = conv;
  custom.domain = "com.example";
  EXPECT_EQ(graph::weighted_op(custom), nullptr);
}

TEST(ExampleCount, AdaptsToTheDataAndRefusesWhatItCannotMeet) {
  EXPECT_EQ(data::example_count("validation", 0, 1297, 0.2, 2000, "training examples", 1), 259);
  EXPECT_EQ(data::example_count("validation", 0, 60000, 0.2, 2000, "training examples", 1), 2000);
  EXPECT_EQ(data::example_count("validation", 0, 3, 0.2, 2000, "training examples", 1), 1);
  EXPECT_EQ(data::example_count("sensitivity", 0, 30, 1.0, 500), 30);
  EXPECT_EQ(data::example_count("validation", 200, 1297, 0.2, 2000, "training examples", 1), 200);
  EXPECT_NE(error_of([] { data::example_count("validation", 5000, 1297, 0.2, 2000, "training examples", 1); })
                .find("validation 5000 needs fewer than the 1297 training examples"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::example_count("staged score", 600, 500, 1.0, 500, "validation examples"); })
                .find("staged score 600 needs more than the 500 validation examples available"),
            std::string::npos);
  EXPECT_THROW(data::example_count("validation", 0, 1, 0.2, 2000, "training examples", 1), UserError);
  EXPECT_TRUE(data::has_test_split("idx:/data"));
  EXPECT_FALSE(data::has_test_split("npy:x.npy,y.npy"));
}

}  // namespace
}  // namespace autoprec
