// finetune: knowledge-distillation fine-tuning of a quantized network.
#include <ATen/ATen.h>

#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/evaluate.h"
#include "exec/model.h"
#include "graph/onnx_export.h"
#include "train/finetune.h"
#include "util/error.h"
#include "util/log.h"

namespace autoprec::cli {
namespace {

using nlohmann::json;

struct FinetuneCliOptions {
  std::string model;
  DataOptions data;
  QuantOptionsCli quant;
  std::string out;
  train::FinetuneOptions train;
  std::string optimizer = "sgd";
  std::string schedule = "cosine";
  std::string activation_ranges = "freeze";
  std::string weight_scales = "freeze";
  bool lsq = false;
  int64_t validation = -1;    // examples carved from the training split, or drawn from validation_data; -1 adapts
  std::string validation_data;             // a held-out dataset spec (optional)
  std::string validation_split = "train";  // its split for idx: specs
  int64_t subset = 0;         // training examples used (0: all, or steps × batch for --steps)
  int64_t limit = 0;          // test examples evaluated (0: all)
  std::string metric;         // empty: top1 with labels, agreement without
  bool json = false;
};

json epoch_json(const train::EpochLog& e, eval::Metric metric) {
  json j = {{"epoch", e.epoch}, {"steps", e.steps},       {"loss", e.loss}, {"train_top1", e.train_top1},
            {"learning_rate", e.learning_rate}, {"seconds", e.seconds}};
  if (e.train_top1 < 0) j.erase("train_top1");
  if (e.validated) j["validation_score"] = e.validation_score;
  if (e.validated && metric == eval::Metric::Top1) j["validation_top1"] = e.validation_score;
  return j;
}

// Bytes a checkpoint needs on disk: the initializers plus slack for the graph.
uintmax_t checkpoint_bytes(const graph::Graph& graph) {
  uintmax_t bytes = 1 << 20;
  for (const auto& [name, t] : graph.initializers) bytes += static_cast<uintmax_t>(t.numel() * t.element_size());
  return bytes;
}

int run_finetune(FinetuneCliOptions o) {
  train::FinetuneOptions& t = o.train;
  t.optimizer = train::parse_optimizer(o.optimizer);
  t.schedule = train::parse_schedule(o.schedule);
  t.activation_ranges = train::parse_activation_ranges(o.activation_ranges);
  if (o.weight_scales != "freeze" && o.weight_scales != "refresh") {
    fail("--weight-scales must be freeze or refresh, not '{}'", o.weight_scales);
  }
  t.refresh_weight_scales = o.weight_scales == "refresh";
  t.seed = o.quant.seed;
  t.quiet = o.json;
  if ((t.steps > 0) == (t.epochs > 0)) fail("give exactly one of --steps N or --epochs E");

  auto graph = exec::load_model(o.model);
  quant::PrecisionConfig config = load_config(o.quant);
  t.learnable_scales = o.lsq || config.options.lsq;
  auto layers = quant::find_quantizable_layers(*graph, config.options.quantize_activation_matmul);
  quant::resolve(config, quant::layer_names(layers));

  data::Dataset full_train = o.data.load(data::Split::Train, *graph);
  data::Dataset test = o.data.load(data::Split::Test, *graph);
  if (o.limit > 0) test = data::take(test, o.limit);
  std::optional<data::Dataset> held_out;
  if (!o.validation_data.empty()) {
    held_out = data::load_dataset(o.validation_data, data::parse_split(o.validation_split), o.data.preprocess(),
                                  graph->input_names());
  }
  int64_t validation_size = o.validation;
  if (validation_size != 0) {
    validation_size =
        held_out ? data::example_count("validation", std::max<int64_t>(0, o.validation), held_out->size(), 1.0, 5000,
                                       "examples of " + o.validation_data)
                 : data::example_count("validation", std::max<int64_t>(0, o.validation), full_train.size(), 0.2, 5000,
                                       "training examples", 1);
  }
  data::TrainValidation split =
      data::train_and_validation(full_train, held_out ? &*held_out : nullptr, validation_size, o.quant.seed);
  // An npy: dataset has one split: what the summary reports is measured on the
  // validation examples (held out from training), never called a test score.
  std::string evaluated_on = "test";
  if (!data::has_test_split(o.data.spec)) {
    if (validation_size > 0) {
      test = o.limit > 0 ? data::take(split.validation, o.limit) : split.validation;
      evaluated_on = "validation";
    } else {
      evaluated_on = "training data";
    }
  }
  const eval::Metric metric = resolve_metric(o.metric, full_train);
  t.metric = metric;
  if (!full_train.labelled() && t.distill.alpha < 1) {
    notice(fmt::format("{} has no labels: fine-tuning is pure distillation (alpha 1)", full_train.source));
    t.distill.alpha = 1;
  }
  data::Dataset train_set = split.train;
  int64_t subset = o.subset;
  if (subset == 0 && t.steps > 0) subset = t.steps * t.batch_size;
  if (subset > 0) train_set = data::take(train_set, subset);

  exec::Executor teacher(graph, o.model);
  teacher.run(train_set.inputs(0, 1));  // the data fits the model, before anything is written
  teacher.run(test.inputs(0, 1));

  prepare_output_dir(o.out);
  std::error_code ec;
  auto space = std::filesystem::space(o.out, ec);
  uintmax_t needed = 3 * checkpoint_bytes(*graph);
  if (!ec && space.available < needed) {
    fail("not enough free space in {}: {} available, about {} needed for the checkpoints", o.out,
         human_bits(8.0 * static_cast<double>(space.available)), human_bits(8.0 * static_cast<double>(needed)));
  }
  const std::string model_path = o.out + "/model.onnx";
  const std::string config_path = o.out + "/precision.yaml";
  const std::string log_path = o.out + "/finetune.json";

  auto student = build_quantized(graph, o.model, o.quant, &o.data);
  eval::EvalOptions quiet_eval;
  quiet_eval.quiet = true;
  quiet_eval.metric = metric;
  if (eval::needs_reference(metric)) quiet_eval.reference_outputs = eval::outputs_of(teacher, test);
  eval::EvalResult fp32_test = eval::evaluate(teacher, test, quiet_eval);
  eval::EvalResult before_test = eval::evaluate(student->executor(), test, quiet_eval);
  std::optional<double> before_validation;
  if (validation_size > 0)
    before_validation = eval::evaluate_against(student->executor(), teacher, split.validation, {256, true, false, metric}).score;
  spdlog::info("seed {}; {} training and {} validation examples", t.seed, train_set.size(), split.validation.size());

  json report = {{"model", o.model},
                 {"precision", o.quant.precision},
                 {"data", o.data.spec},
                 {"seed", t.seed},
                 {"mode", t.steps > 0 ? "steps" : "epochs"},
                 {"options",
                  {{"steps", t.steps}, {"epochs", t.epochs}, {"batch_size", t.batch_size},
                   {"optimizer", o.optimizer}, {"learning_rate", t.learning_rate}, {"momentum", t.momentum},
                   {"weight_decay", t.weight_decay}, {"schedule", o.schedule}, {"temperature", t.distill.temperature},
                   {"alpha", t.distill.alpha}, {"crop_padding", t.crop_padding}, {"horizontal_flip", t.horizontal_flip},
                   {"learnable_scales", t.learnable_scales}, {"activation_ranges", o.activation_ranges},
                   {"weight_scales", o.weight_scales},
                   {"teacher_cache", t.steps > 0}}},
                 {"examples", {{"train", train_set.size()}, {"validation", split.validation.size()}, {"test", test.size()}}},
                 {"validation_source", split.validation.source},
                 {"evaluated_on", evaluated_on},
                 {"metric", eval::to_string(metric)},
                 {"fp32", {{"test_score", fp32_test.score}}},
                 {"before", {{"test_score", before_test.score}}},
                 {"epochs", json::array()}};
  if (before_validation) report["before"]["validation_score"] = *before_validation;
  if (before_validation && metric == eval::Metric::Top1) report["before"]["validation_top1"] = *before_validation;
  if (fp32_test.labelled) {
    report["fp32"]["test_top1"] = fp32_test.top1;
    report["before"]["test_top1"] = before_test.top1;
  }

  auto write_checkpoint = [&] {
    graph::save_model_proto(
        graph::to_model_proto(*graph, student->executor().parameters(), {{"autoprec.finetuned_from", o.model}}),
        model_path);
    quant::PrecisionConfig calibrated = student->calibrated_config();
    calibrated.calibration_seed = o.quant.seed;
    calibrated.calibration_samples = o.quant.calib;
    quant::save_precision_config(calibrated, config_path);
  };
  int64_t checkpoint_epoch = 0;
  auto on_epoch = [&](const train::EpochLog& e, bool improved) {
    report["epochs"].push_back(epoch_json(e, metric));
    if (improved) {
      write_checkpoint();
      checkpoint_epoch = e.epoch;
    }
    write_file_atomically(log_path, report.dump(2) + "\n", "fine-tune log");
    if (!o.json) {
      fmt::print(stderr, "epoch {}: loss {:.4f}{}{}\n", e.epoch, e.loss,
                 e.train_top1 >= 0 ? fmt::format(", train top-1 {:.2f}%", 100 * e.train_top1) : std::string(),
                 e.validated ? fmt::format(", validation {} {}{}", eval::describe(metric),
                                           eval::format_score(metric, e.validation_score),
                                           improved ? " (best, saved)" : "")
                             : "");
    }
  };

  std::unique_ptr<train::TeacherCache> cache;
  if (t.steps > 0) cache = std::make_unique<train::TeacherCache>(teacher, train_set.inputs());
  const data::Dataset* validation = validation_size > 0 ? &split.validation : nullptr;
  train::FinetuneResult result;
  try {
    result = train::finetune(*student, teacher, train_set, validation, t, cache.get(), on_epoch);
  } catch (const train::TrainingDiverged& e) {
    // The student is back at its last good parameters: keep them on disk.
    write_checkpoint();
    report["diverged_at_step"] = e.step();
    write_file_atomically(log_path, report.dump(2) + "\n", "fine-tune log");
    fail("{}; the last good checkpoint ({}) is in {}", e.what(),
         checkpoint_epoch > 0 ? fmt::format("epoch {}", checkpoint_epoch) : std::string("before fine-tuning"), model_path);
  }
  if (t.steps > 0 || validation == nullptr) write_checkpoint();
  else if (result.best_epoch > 0) write_checkpoint();  // best epoch's parameters, recalibrated if asked

  eval::EvalResult after_test = eval::evaluate(student->executor(), test, quiet_eval);
  report["after"] = {{"test_score", after_test.score}, {"best_epoch", result.best_epoch}};
  if (after_test.labelled) report["after"]["test_top1"] = after_test.top1;
  if (result.best_epoch > 0) report["after"]["validation_score"] = result.best_validation_score;
  if (result.best_epoch > 0 && metric == eval::Metric::Top1) report["after"]["validation_top1"] = result.best_validation_score;
  report["training"] = {{"steps", result.steps}, {"seconds", result.seconds},
                        {"images_per_second", result.images_per_second}};
  report["outputs"] = {{"model", model_path}, {"precision", config_path}};
  write_file_atomically(log_path, report.dump(2) + "\n", "fine-tune log");
  if (o.json) {
    print_json(report);
    return 0;
  }
  auto score = [&](double v) { return eval::format_score(metric, v); };
  fmt::print("{} {}: FP32 {}, quantized {} before, {} after fine-tuning ({} steps, {:.0f} s)\n",
             evaluated_on == "training data" ? "training-data" : evaluated_on, eval::describe(metric),
             score(fp32_test.score), score(before_test.score), score(after_test.score), result.steps, result.seconds);
  fmt::print("wrote {}, {} and {}\n", model_path, config_path, log_path);
  return 0;
}

}  // namespace

void register_train_commands(CLI::App& app, Runner& runner) {
  static FinetuneCliOptions o;
  CLI::App* cmd = app.add_subcommand("finetune", "Fine-tune a quantized network with knowledge distillation from FP32");
  cmd->add_option("model", o.model, "ONNX model (the FP32 teacher and the student's starting point)")->required();
  add_data_options(cmd, o.data, true);
  add_quant_options(cmd, o.quant);
  add_target_option(cmd, o.quant);
  cmd->get_option("--precision")->required()->description("Precision configuration (YAML)");
  auto* steps = cmd->add_option("--steps", o.train.steps, "Short fine-tune: optimizer steps (teacher logits cached)")
                    ->check(kPositive);
  auto* epochs = cmd->add_option("--epochs", o.train.epochs, "Full fine-tune: epochs, keeping the best validation epoch")
                     ->check(kPositive);
  steps->excludes(epochs);
  cmd->add_option("--out", o.out, "Output directory (model.onnx, precision.yaml, finetune.json)")->required();
  cmd->add_option("--batch-size", o.train.batch_size, "Batch size (default 128)")->check(kPositive);
  cmd->add_option("--optimizer", o.optimizer, "sgd (default) or adamw");
  cmd->add_option("--lr", o.train.learning_rate, "Peak learning rate (default 0.01)");
  cmd->add_option("--momentum", o.train.momentum, "SGD momentum (default 0.9)");
  cmd->add_option("--weight-decay", o.train.weight_decay, "Weight decay on weights (default 1e-4)");
  cmd->add_option("--schedule", o.schedule, "cosine (default), step or constant");
  cmd->add_option("--step-size", o.train.step_size, "Step schedule: steps between decays (default: a third of the run)");
  cmd->add_option("--gamma", o.train.step_gamma, "Step schedule: decay factor (default 0.1)");
  cmd->add_option("--temperature", o.train.distill.temperature, "Distillation temperature T (default 1)");
  cmd->add_option("--alpha", o.train.distill.alpha,
                  "Weight of the distillation term; 1: labels unused, 0: cross-entropy only (default 0.9; 1 on data without "
                  "labels)");
  cmd->add_option("--crop-padding", o.train.crop_padding, "Random-crop augmentation padding in pixels (default 0: off)");
  cmd->add_flag("--hflip", o.train.horizontal_flip, "Random horizontal flips (off by default)");
  cmd->add_flag("--lsq", o.lsq, "Learn the quantizers' step sizes (LSQ); also on when the config sets lsq: true");
  cmd->add_option("--activation-ranges", o.activation_ranges,
                  "freeze (default) or recalibrate activation ranges after training");
  cmd->add_option("--weight-scales", o.weight_scales,
                  "freeze (default: calibrated scales stay fixed) or refresh (min/max after every step)");
  cmd->add_option("--validation", o.validation,
                  "Validation examples: carved from the training split, or drawn from --validation-data (default: 20% of "
                  "the training split or all of --validation-data, at most 5000; 0: none)")
      ->check(kNonNegative);
  cmd->add_option("--validation-data", o.validation_data,
                  "Held-out validation dataset (idx:DIR or npy:IMAGES.npy,LABELS.npy); the training split stays whole");
  cmd->add_option("--validation-split", o.validation_split, "Split of --validation-data for idx: specs (default train)")
      ->check(CLI::IsMember({"train", "test"}));
  cmd->add_option("--subset", o.subset, "Train on the first N training examples (default: all; steps × batch with --steps)")
      ->check(kNonNegative);
  cmd->add_option("--limit", o.limit, "Evaluate on the first N test examples only")->check(kNonNegative);
  add_metric_option(cmd, o.metric);
  cmd->add_flag("--json", o.json, "Print the fine-tune report as one JSON object");
  cmd->callback([&runner] { runner = [] { return run_finetune(o); }; });
}

}  // namespace autoprec::cli
