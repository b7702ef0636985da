// Metrics (eval/metric.h) and scoring on data without labels.
#include <chrono>
#include <cmath>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "eval/evaluate.h"
#include "eval/metric.h"
#include "deploy/command_metric.h"
#include "runtime/process.h"
#include "temp_dir.h"
#include "test_models.h"
#include "util/error.h"

namespace autoprec {
namespace {

using eval::Metric;

double score(Metric m, const at::Tensor& out, const at::Tensor& ref, const at::Tensor& labels = {}) {
  eval::MetricAccumulator a(m);
  a.add(out, ref, labels);
  return a.value();
}

TEST(Metric, ValuesByHand) {
  at::Tensor ref = at::tensor({2.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f}).reshape({2, 3});
  at::Tensor out = at::tensor({2.0f, 0.0f, 0.0f, 3.0f, 1.0f, 0.0f}).reshape({2, 3});
  at::Tensor labels = at::tensor({0, 1}, at::kLong);
  EXPECT_DOUBLE_EQ(score(Metric::Top1, out, {}, labels), 0.5);    // row 1 predicts 0, label 1
  EXPECT_DOUBLE_EQ(score(Metric::Agreement, out, ref), 0.5);      // row 1: 0 against 1
  // KL: row 0 identical (0); row 1 by hand.
  auto softmax = [](std::vector<double> v) {
    double z = 0;
    for (double& x : v) z += std::exp(x);
    for (double& x : v) x = std::exp(x) / z;
    return v;
  };
  auto p = softmax({0, 1, 0}), q = softmax({3, 1, 0});
  double kl = 0;
  for (int i = 0; i < 3; ++i) kl += p[i] * std::log(p[i] / q[i]);
  EXPECT_NEAR(score(Metric::Kl, out, ref), kl / 2, 1e-12);
  // SQNR: signal 4 + 1 = 5, noise 9.
  EXPECT_NEAR(score(Metric::Sqnr, out, ref), 10 * std::log10(5.0 / 9.0), 1e-9);
  EXPECT_DOUBLE_EQ(score(Metric::Sqnr, ref, ref), eval::kMaxSqnrDb);
  // SQNR takes outputs of any shape; the class-score metrics refuse them.
  at::Tensor map = at::randn({2, 3, 4, 4});
  EXPECT_GT(score(Metric::Sqnr, map + 0.01, map), 20);
  EXPECT_THROW(score(Metric::Agreement, map, map), UserError);
  EXPECT_THROW(score(Metric::Kl, out, ref.narrow(1, 0, 2)), UserError);
}

TEST(Metric, AccumulatesOverBatchesAsOverTheWhole) {
  at::manual_seed(3);
  at::Tensor ref = at::randn({10, 5}), out = ref + 0.5 * at::randn({10, 5});
  for (Metric m : {Metric::Agreement, Metric::Kl, Metric::Sqnr}) {
    eval::MetricAccumulator a(m);
    a.add(out.narrow(0, 0, 4), ref.narrow(0, 0, 4), {});
    a.add(out.narrow(0, 4, 6), ref.narrow(0, 4, 6), {});
    EXPECT_NEAR(a.value(), score(m, out, ref), 1e-12) << eval::to_string(m);
    EXPECT_EQ(a.examples(), 10);
  }
}

TEST(Metric, NamesDirectionsAndReferenceScores) {
  EXPECT_EQ(eval::parse_metric("kl"), Metric::Kl);
  try {
    eval::parse_metric("agrement");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'agreement'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(eval::needs_labels(Metric::Top1));
  EXPECT_FALSE(eval::needs_labels(Metric::Sqnr));
  EXPECT_FALSE(eval::higher_is_better(Metric::Kl));
  EXPECT_GT(eval::utility(Metric::Kl, 0.01), eval::utility(Metric::Kl, 0.1));
  EXPECT_DOUBLE_EQ(eval::reference_score(Metric::Top1, 0.9), 0.9);
  EXPECT_DOUBLE_EQ(eval::reference_score(Metric::Agreement, 0.9), 1.0);
  // The reward's scale: 1 at the FP32 reference of every label-free metric.
  for (Metric m : {Metric::Agreement, Metric::Kl, Metric::Sqnr})
    EXPECT_NEAR(eval::reward_scale(m, eval::reference_score(m, 0)), 1.0, 1e-12) << eval::to_string(m);
  EXPECT_NEAR(eval::reward_scale(Metric::Sqnr, 20), 0.99, 1e-12);  // 1% of the output energy is noise
  // A failed evaluation's floor: no fidelity at all on every metric's scale.
  for (Metric m : {Metric::Top1, Metric::Agreement, Metric::Kl, Metric::Sqnr, Metric::Command})
    EXPECT_NEAR(eval::reward_scale(m, eval::floor_score(m)), 0.0, 1e-12) << eval::to_string(m);
}

TEST(Evaluate, LabelFreeMetricsOnDataWithoutLabels) {
  auto g = testing::tiny_model();
  exec::Executor model(g);
  data::Dataset d;
  d.images = at::randn({20, 1, 4, 4});
  d.source = "unlabelled";
  eval::EvalOptions o;
  o.quiet = true;
  o.batch_size = 6;
  EXPECT_THROW(eval::evaluate(model, d, o), UserError);  // top1 needs labels
  o.metric = Metric::Agreement;
  eval::EvalResult r = eval::evaluate_against(model, model, d, o);
  EXPECT_FALSE(r.labelled);
  EXPECT_DOUBLE_EQ(r.score, 1.0);
  o.metric = Metric::Kl;
  EXPECT_NEAR(eval::evaluate_against(model, model, d, o).score, 0.0, 1e-12);
  // Against perturbed reference outputs the score moves.
  o.reference_outputs = eval::outputs_of(model, d) + 1.0 * at::randn({20, 3});
  EXPECT_GT(eval::evaluate(model, d, o).score, 0.01);
}

TEST(Process, CapturesOutputExitCodesSignalsAndTimeouts) {
  auto r = runtime::run_command({"/bin/sh", "-c", "echo out; echo err >&2; exit 4"}, 10);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(runtime::last_line(r.out), "out");
  EXPECT_EQ(runtime::last_line(r.err_tail), "err");
  EXPECT_FALSE(r.timed_out);
  r = runtime::run_command({"/bin/sh", "-c", "kill -SEGV $$"}, 10);
  EXPECT_EQ(r.signal, "SIGSEGV");
  // A child that keeps its output open is killed at the deadline, its children with it.
  auto start = std::chrono::steady_clock::now();
  r = runtime::run_command({"/bin/sh", "-c", "sleep 30 & sleep 30"}, 0.5);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);
  EXPECT_THROW(runtime::run_command({"/nonexistent/program"}, 1), UserError);
  EXPECT_EQ(runtime::last_line("a\nb  \n\n"), "b");
}

TEST(CommandMetric, ReadsOneNumberOrSaysWhatWentWrong) {
  testing::TempDir dir;
  const std::string model = dir.file("m.onnx");
  { std::ofstream(model) << "x"; }
  auto run = [&](const std::string& command, double timeout = 10) {
    return deploy::run_metric_command({command, timeout}, model);
  };
  // The model's path is the last argument.
  EXPECT_DOUBLE_EQ(run("f() { test \"$1\" = '" + model + "' && echo progress && echo -2.5e-1; }; f"), -0.25);
  auto message = [&](const std::string& command, double timeout = 10) {
    try {
      run(command, timeout);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("echo oops >&2; exit 3; :").find("exited with status 3 (its last stderr line: 'oops')"), std::string::npos)
      << message("echo oops >&2; exit 3; :");
  EXPECT_NE(message("echo").find("must print one number"), std::string::npos);
  EXPECT_NE(message("echo nan; :").find("must print one number"), std::string::npos);
  EXPECT_NE(message("sleep 20; :", 0.3).find("did not finish within 0.3 s"), std::string::npos);
  EXPECT_NE(message("").find("needs a command"), std::string::npos);
}

}  // namespace
}  // namespace autoprec
