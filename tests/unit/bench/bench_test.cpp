#include "teachformer/bench/bench.hpp"
#include "teachformer/models/low_precision.hpp"

#include <cmath>
#include <csignal>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/models/registry.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::bench {
namespace {

using teachformer::test::message_of;

using Json = nlohmann::json;

// Tiny configurations at 16^3 (the suite takes seconds); names as the paper models so targets apply by key.
BenchModel tiny_student(const std::string& name = "teachformer_s") {
  return {name, "teachformer_s", {{"preset", "tiny"}, {"in_channels", 2}, {"out_channels", 2}}, {16, 16, 16}};
}
BenchModel tiny_unetr(const std::string& name = "unetr", int64_t hidden = 32) {
  return {name,
          "unetr",
          {{"in_channels", 2}, {"out_channels", 2}, {"img_size", 16}, {"feature_size", 4}, {"hidden_size", hidden},
           {"mlp_dim", 2 * hidden}, {"num_heads", 2}, {"num_layers", 4}},
          {16, 16, 16}};
}
BenchModel tiny_swin(const std::string& name = "swin_unetr") {
  return {name,
          "swin_unetr",
          {{"in_channels", 2}, {"out_channels", 2}, {"feature_size", 12}, {"depths", {1, 1, 1, 1}},
           {"num_heads", {1, 1, 1, 1}}, {"window_size", 2}},
          {32, 32, 32}};
}

Json base_task(const std::string& kind, int repeats = 1) {
  return {{"task", kind}, {"repeats", repeats}, {"budget_s", 100.0}, {"seed", 0}};
}

// These tests check structure, not speed, and run the models on one intra-op thread: on a loaded 2-core machine
// every parallel region of a 2-thread op waits for a descheduled thread, making tiny models up to 100x slower.
class OneThread {
 public:
  OneThread() : before_(num_threads()) { set_threads(1); }
  ~OneThread() { set_threads(before_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int before_;
};

class BenchTasks : public ::testing::Test {
  OneThread one_thread_;
};
class BenchRun : public ::testing::Test {
  OneThread one_thread_;
};

// ---------------------------------------------------------------------------------------------------------------

TEST(BenchModels, NamesGiveThePaperConfigurations) {
  const BenchModel s48 = bench_model("swin_unetr", 2);
  EXPECT_EQ(s48.key, "swin_unetr");
  EXPECT_EQ(s48.options["feature_size"], 48);
  EXPECT_EQ(bench_model("swin_unetr_48", 2).options, s48.options);
  EXPECT_EQ(bench_model("swin_unetr_24", 2).options["feature_size"], 24);
  const BenchModel unetr = bench_model("unetr", 2);
  EXPECT_EQ(unetr.options["img_size"], 96);
  EXPECT_EQ(unetr.patch, (std::vector<int64_t>{96, 96, 96}));
  const BenchModel hdf = bench_model("hdenseformer", 2);
  EXPECT_EQ(hdf.patch, (std::vector<int64_t>{144, 144, 144}));
  EXPECT_EQ(hdf.options["n_filters"], 32);
  EXPECT_EQ(hdf.options["transformer_depth"], 24);
  EXPECT_EQ(bench_model("teachformer_s", 3).options["preset"], "small");
  EXPECT_EQ(bench_model("teachformer_s", 3).options["in_channels"], 3);
  for (const auto& name : default_bench_model_names()) EXPECT_NO_THROW(bench_model(name, 2)) << name;
  for (const auto& name : default_bench_teacher_names()) EXPECT_NO_THROW(bench_model(name, 2)) << name;
}

TEST(BenchModels, UnknownNameListsTheValidOnesAndTheNearest) {
  const std::string msg = message_of([] { bench_model("swin_untr", 2); });
  EXPECT_NE(msg.find("unknown bench model 'swin_untr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("swin_unetr_24"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'swin_unetr'"), std::string::npos) << msg;
}

TEST(BenchModels, FixedSizeOptionsFollowTheInput) {
  EXPECT_EQ(options_for_input(bench_model("unetr", 2), {64, 64, 48})["img_size"], Json({64, 64, 48}));
  EXPECT_EQ(options_for_input(bench_model("hdenseformer", 2), {96, 96, 96})["image_size"], Json({96, 96, 96}));
  const BenchModel swin = bench_model("swin_unetr", 2);
  EXPECT_EQ(options_for_input(swin, {64, 64, 64}), swin.options);
}

TEST(BenchModels, JsonRoundTripIsStrict) {
  const BenchModel m = bench_model("hdenseformer", 2);
  const BenchModel back = bench_model_from_json(to_json(m));
  EXPECT_EQ(back.name, m.name);
  EXPECT_EQ(back.key, m.key);
  EXPECT_EQ(back.options, m.options);
  EXPECT_EQ(back.patch, m.patch);
  Json bad = to_json(m);
  bad["pach"] = {1, 2, 3};
  EXPECT_THROW(bench_model_from_json(bad), ConfigError);
  Json unknown = to_json(m);
  unknown["key"] = "nope";
  EXPECT_THROW(bench_model_from_json(unknown), InvalidArgument);
}

TEST(BenchParsing, ShapesAcceptFourOrFivePositiveNumbers) {
  EXPECT_EQ(parse_bench_shape("2x32x32x32"), (std::vector<int64_t>{1, 2, 32, 32, 32}));
  EXPECT_EQ(parse_bench_shape("2x3x16x32x48"), (std::vector<int64_t>{2, 3, 16, 32, 48}));
  EXPECT_EQ(shape_string({1, 2, 96, 96, 96}), "1x2x96x96x96");
  for (const char* bad : {"2x32x32", "2x0x32x32", "2xax32x32", "2x32x32x32x32x1", "", "2x-3x4x4", "2x3.5x4x4"}) {
    const std::string msg = message_of([&] { parse_bench_shape(bad, "--case"); });
    EXPECT_EQ(msg.rfind("--case '", 0), 0u) << bad << ": " << msg;
  }
}

TEST(BenchParsing, SectionsInRunOrderAndUnknownOnesListed) {
  EXPECT_EQ(parse_bench_sections("e2e,forward"),
            (std::vector<BenchSection>{BenchSection::Forward, BenchSection::EndToEnd}));
  EXPECT_EQ(parse_bench_sections("forward,train,distill,window,e2e"), default_bench_sections());
  EXPECT_EQ(parse_bench_sections("ddp,forward,train,distill,window,e2e"), all_bench_sections());
  const std::string msg = message_of([] { parse_bench_sections("forward,speed"); });
  EXPECT_NE(msg.find("--what 'forward,speed': unknown section 'speed'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("window"), std::string::npos) << msg;
  EXPECT_THROW(parse_bench_sections(""), InvalidArgument);
}

TEST(BenchParsing, MedianOfOddEvenAndEmpty) {
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
  EXPECT_TRUE(std::isnan(median({})));
}

// ---------------------------------------------------------------------------------------------------------------
// Tasks, in this process

TEST_F(BenchTasks, ForwardReportsParametersFlopsAndTheMedianOfTheRuns) {
  Json t = base_task("forward", 3);
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  const Json r = run_bench_task(t);
  ASSERT_FALSE(r.contains("error")) << r.dump();
  const auto model = models::create_model("teachformer_s", tiny_student().options);
  EXPECT_EQ(r["params"].get<int64_t>(), models::count_parameters(*model));
  EXPECT_GT(r["gflops"].get<double>(), 0.0);
  ASSERT_EQ(r["runs"].size(), 3u);
  EXPECT_DOUBLE_EQ(r["seconds"].get<double>(), median(r["runs"].get<std::vector<double>>()));
  EXPECT_GT(r["peak_rss_mb"].get<double>(), 0.0);
  EXPECT_EQ(r["output_shape"], Json({1, 2, 16, 16, 16}));
  EXPECT_EQ(r["spec"]["size_divisor"], Json({16, 16, 16}));
  EXPECT_EQ(r["task"], "forward");
}

TEST_F(BenchTasks, NoTimedRunStartsOnceTheBudgetIsSpent) {
  Json t = base_task("forward", 5);
  t["budget_s"] = 0.0;
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  EXPECT_EQ(run_bench_task(t)["runs"].size(), 1u);
}

TEST_F(BenchTasks, AFastMeasurementRunsUntilTheMinimumTimeUpToFiftyRuns) {
  Json t = base_task("forward", 2);
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  t["min_s"] = 1e6;  // never reached: the cap stops it
  EXPECT_EQ(run_bench_task(t)["runs"].size(), 50u);
  t["min_s"] = 0.0;
  EXPECT_EQ(run_bench_task(t)["runs"].size(), 2u);
  t["min_s"] = 1e6;
  t["budget_s"] = 0.0;  // the budget still wins
  EXPECT_EQ(run_bench_task(t)["runs"].size(), 1u);
  t["min_s"] = -1.0;
  EXPECT_THROW(run_bench_task(t), InvalidArgument);
}

TEST_F(BenchTasks, AnInputTheModelRejectsIsSkippedWithItsMessage) {
  Json t = base_task("forward");
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 24, 24, 24};
  const Json r = run_bench_task(t);
  EXPECT_TRUE(r.value("skipped", false)) << r.dump();
  EXPECT_NE(r["error"].get<std::string>().find("divisible"), std::string::npos) << r.dump();
  // UNETR's img_size follows the input; 40 is no multiple of its patch 16, so its constructor refuses.
  t["model"] = to_json(tiny_unetr());
  t["input"] = {1, 2, 40, 40, 40};
  const Json u = run_bench_task(t);
  EXPECT_TRUE(u.value("skipped", false)) << u.dump();
  EXPECT_NE(u["error"].get<std::string>().find("img_size"), std::string::npos) << u.dump();
}

TEST_F(BenchTasks, MalformedTasksNameTheField) {
  EXPECT_NE(message_of([] { run_bench_task({{"task", "fly"}}); }).find("unknown task 'fly'"), std::string::npos);
  Json t = base_task("forward");
  t["model"] = to_json(tiny_student());
  EXPECT_NE(message_of([&] { run_bench_task(t); }).find("field 'input' is missing"), std::string::npos);
  t["input"] = "1x2x32x32x32";
  EXPECT_NE(message_of([&] { run_bench_task(t); }).find("field 'input' has the wrong type"), std::string::npos);
  t["input"] = {1, 2, 16, 16, 16};
  t["repeats"] = 0;
  EXPECT_NE(message_of([&] { run_bench_task(t); }).find("repeats must be >= 1"), std::string::npos);
}

TEST_F(BenchTasks, TrainStepReportsAFiniteLossWithDeepSupervisionTerms) {
  Json t = base_task("train", 2);
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  const Json r = run_bench_task(t);
  ASSERT_FALSE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["runs"].size(), 2u);
  EXPECT_GT(r["seconds"].get<double>(), 0.0);
  EXPECT_TRUE(std::isfinite(r["loss"].get<double>()));
  EXPECT_TRUE(r["terms"].contains("total")) << r["terms"].dump();
}

TEST_F(BenchTasks, DistillModesComputeTheirTermsOnTheSameBatch) {
  Json t = base_task("distill");
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  t["teachers"] = {to_json(tiny_unetr("unetr_t")), to_json(tiny_unetr("unetr_u", 16))};
  std::map<std::string, Json> r;
  for (const std::string mode : {"student", "cached", "live"}) {
    t["mode"] = mode;
    r[mode] = run_bench_task(t);
    ASSERT_FALSE(r[mode].contains("error")) << mode << ": " << r[mode].dump();
    EXPECT_GT(r[mode]["seconds"].get<double>(), 0.0) << mode;
  }
  EXPECT_FALSE(r["student"]["terms"].contains("kd.unetr_t"));
  for (const std::string mode : {"cached", "live"}) {
    EXPECT_EQ(r[mode]["teachers"], Json({"unetr_t", "unetr_u"})) << mode;
    for (const char* term : {"kd.unetr_t", "kd.unetr_u", "attn_coarse.unetr_t", "attn_fine.unetr_u"})
      EXPECT_TRUE(r[mode]["terms"].contains(term)) << mode << " lacks " << term << ": " << r[mode]["terms"].dump();
    EXPECT_EQ(r[mode]["grid"]["coarse"], Json({1, 1, 1})) << r[mode]["grid"].dump();
  }
  // The supervised part is the same batch in every mode (same seed): the student's first-step Dice+CE agrees.
  EXPECT_GT(r["cached"]["terms"]["gt"].get<double>(), 0.0);
}

TEST_F(BenchTasks, ALiveTeacherThatRejectsThePatchIsAnErrorNamingIt) {
  Json t = base_task("distill");
  t["mode"] = "live";
  t["model"] = to_json(tiny_student());
  t["input"] = {1, 2, 16, 16, 16};
  t["teachers"] = {to_json(tiny_swin("swin_t"))};  // SwinUNETR needs multiples of 32
  const std::string msg = message_of([&] { run_bench_task(t); });
  EXPECT_NE(msg.find("live teacher 'swin_t' rejects the student's patch [16, 16, 16]"), std::string::npos) << msg;
}

TEST_F(BenchTasks, WindowCountsTheWindowsOfTheCase) {
  Json t = base_task("window");
  t["model"] = to_json(tiny_student());
  t["case"] = {2, 24, 24, 24};
  t["roi"] = {16, 16, 16};
  t["overlap"] = 0.5;
  const Json r = run_bench_task(t);
  ASSERT_FALSE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["windows"], 8);  // origins {0, 8} per axis
  EXPECT_GT(r["seconds"].get<double>(), 0.0);
}

TEST_F(BenchTasks, EndToEndPredictsTheCaseOntoTheCtGridAndWritesTheLabel) {
  test::TempDir dir;
  const EndToEndCase e = prepare_end_to_end(dir.path(), tiny_student(), 48.0, 3);
  // The model folder is self-describing: config, plan, dataset and a fold_0 checkpoint with metadata.
  for (const char* f : {"config.json", "plan.json", "dataset.json", "fold_0/checkpoint_best.safetensors"})
    EXPECT_TRUE(fs::exists(e.model_dir / f)) << f;
  Json t = base_task("e2e");
  t["model_dir"] = e.model_dir.string();
  t["dataset"] = e.dataset.string();
  t["output"] = e.output.string();
  t["overlap"] = 0.0;
  const Json r = run_bench_task(t);
  ASSERT_FALSE(r.contains("error")) << r.dump();
  ASSERT_TRUE(fs::exists(e.output));
  const auto label = io::read_image(e.output);
  EXPECT_EQ(label.data.sizes().vec(), r["label_shape"].get<std::vector<int64_t>>());
  // The CT file (first channel of the HECKTOR layout) defines the reference grid.
  fs::path ct;
  for (const auto& entry : fs::recursive_directory_iterator(e.dataset))
    if (entry.path().filename().string().find("_ct.nii.gz") != std::string::npos) ct = entry.path();
  ASSERT_FALSE(ct.empty());
  EXPECT_EQ(io::read_image(ct).data.sizes().slice(1).vec(), label.data.sizes().slice(1).vec());
  for (const char* k : {"load_s", "first_s", "seconds", "preprocess_s", "network_s", "restore_s", "write_s"})
    EXPECT_GT(r[k].get<double>(), 0.0) << k;
  // The phases are parts of one case: their medians cannot add up to much more than the case's median.
  const double phases = r["preprocess_s"].get<double>() + r["network_s"].get<double>() +
                        r["restore_s"].get<double>() + r["write_s"].get<double>();
  EXPECT_LT(phases, 1.5 * r["seconds"].get<double>()) << r.dump();
  EXPECT_EQ(r["patch"], Json({16, 16, 16}));
}

TEST_F(BenchTasks, AnUntrainedFolderChecksChannelsAndClasses) {
  test::TempDir dir;
  data::PreprocessPlan plan;
  plan.channels = {{"CT", {}}};
  plan.reference_channel = "CT";
  const std::string msg = message_of([&] {
    write_untrained_model_folder(dir / "m", "teachformer_s", tiny_student().options, plan,
                                 {{"background", 0}, {"tumor", 1}}, {16, 16, 16});
  });
  EXPECT_NE(msg.find("the plan has 1 channels [CT] but model 'teachformer_s' reads 2"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

TEST(BenchChild, TheResultLineIsFoundAmongOtherOutput) {
  const ChildResult c = run_child_process(
      {"/bin/sh", "-c", "echo hello; echo 'TF_BENCH_RESULT {\"a\": 1}'; echo 'x TF_BENCH_RESULT {\"b\": 2}'; "
                        "echo bye >&2"});
  EXPECT_EQ(c.exit_code, 0);
  EXPECT_EQ(c.signal, 0);
  EXPECT_FALSE(c.timed_out);
  EXPECT_EQ(find_bench_result(c.stdout_text), Json({{"a", 1}}));
  EXPECT_EQ(c.stderr_tail, "bye\n");
  EXPECT_GT(c.ru_maxrss_mb, 0.0);
  EXPECT_TRUE(find_bench_result("no marker here\n").is_null());
  EXPECT_TRUE(find_bench_result("TF_BENCH_RESULT {broken\n").is_null());
}

TEST(BenchChild, ATimedOutChildIsKilled) {
  const ChildResult c = run_child_process({"/bin/sh", "-c", "exec sleep 30"}, 0.3);
  EXPECT_TRUE(c.timed_out);
  EXPECT_EQ(c.signal, SIGKILL);
  EXPECT_LT(c.seconds, 10.0);
}

TEST(BenchChild, TheSampledHighWaterMarkSeesTheChildsAllocationAlone) {
  // A child touching 200 MiB: its VmHWM, sampled from outside, shows them; ru_maxrss is at least as large (it also
  // counts this test process's RSS at the spawn, which is why it is only an upper bound).
  // dd holds one 200 MiB block buffer, refilled from /dev/zero 30 times (about a second): long enough to be sampled.
  const ChildResult big = run_child_process(
      {"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=30", "status=none"});
  ASSERT_EQ(big.exit_code, 0) << big.stderr_tail;
  EXPECT_GT(big.hwm_mb, 190.0);
  EXPECT_LT(big.hwm_mb, 400.0);
  EXPECT_GE(big.ru_maxrss_mb + 1.0, big.hwm_mb);
  const ChildResult small = run_child_process({"/bin/sh", "-c", "exec sleep 0.3"});
  EXPECT_LT(small.hwm_mb, 100.0);
}

TEST(BenchChild, TheRunnerTurnsAWorkerWithoutResultIntoAnError) {
  // The runner appends the task JSON as the last argument ($0 of sh -c here).
  const auto runner = child_process_runner({"/bin/sh", "-c", "echo 'it broke' >&2; exit 3"}, 10);
  const Json r = runner({{"task", "forward"}});
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_NE(r["error"].get<std::string>().find("exited with status 3 without a result: it broke"), std::string::npos)
      << r.dump();
  EXPECT_TRUE(r.contains("max_rss_mb"));
  EXPECT_TRUE(r.contains("process_s"));
  const auto killed = child_process_runner({"/bin/sh", "-c", "kill -9 $$"}, 10)({{"task", "forward"}});
  EXPECT_NE(killed["error"].get<std::string>().find("killed (signal 9"), std::string::npos) << killed.dump();
  const auto ok = child_process_runner({"/bin/sh", "-c", "echo \"TF_BENCH_RESULT $0\""}, 10)({{"seconds", 1.5}});
  EXPECT_EQ(ok["seconds"], 1.5) << ok.dump();
}

TEST(BenchChild, AMissingProgramIsAnIoErrorNamingIt) {
  const std::string msg = message_of([] { run_child_process({"/nonexistent/teachformer"}); });
  EXPECT_NE(msg.find("cannot start '/nonexistent/teachformer'"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------------------------
// The whole run (tasks in this process)

std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
      else if (c == '"') quoted = false;
      else cell += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(cell), cell.clear();
    } else if (c == '\n') {
      row.push_back(cell), cell.clear();
      rows.push_back(row), row.clear();
    } else {
      cell += c;
    }
  }
  return rows;
}

TEST_F(BenchRun, SectionsBecomeRowsPerModelAndInputWithTargets) {
  test::TempDir dir;
  BenchOptions o;
  BenchModel unetr32 = tiny_unetr("unetr_32");
  unetr32.patch = {32, 32, 32};
  o.models = {tiny_student(), tiny_unetr()};
  o.teachers = {tiny_unetr(), unetr32};
  o.inputs = {{1, 2, 32, 32, 32}, {1, 2, 24, 24, 24}, {1, 2, 16, 16, 16}};
  o.repeats = 1;
  o.budget_s = 0;
  o.window_case = {2, 32, 32, 32};
  o.overlap = 0;
  o.e2e_bbox_mm = 48;
  o.work_dir = dir / "work";
  o.matmul_size = 128;
  o.runner = in_process_runner();
  std::vector<std::string> log;
  o.log = [&](const std::string& line) { log.push_back(line); };
  const BenchReport report = run_bench(o);

  std::vector<std::pair<std::string, std::string>> ids;
  for (const auto& r : report.rows) ids.emplace_back(r["model"], r["input"]);
  // Model order; within a model its patch first, then the inputs as given.
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"teachformer_s", "1x2x16x16x16"}, {"teachformer_s", "1x2x32x32x32"}, {"teachformer_s", "1x2x24x24x24"},
      {"unetr", "1x2x16x16x16"},         {"unetr", "1x2x32x32x32"},         {"unetr", "1x2x24x24x24"}};
  EXPECT_EQ(ids, expected);
  const Json& s = report.rows[0];
  for (const char* k : {"params", "gflops", "forward_s", "peak_rss_mb", "gflops_per_s", "matmul_fraction",
                        "train_step_s", "distill_student_s", "distill_cached_s", "distill_live_s",
                        "distill_cached_ratio", "distill_live_ratio", "window_s", "e2e_s", "e2e_first_s",
                        "e2e_peak_rss_mb", "e2e_preprocess_s", "e2e_network_s", "e2e_restore_s", "e2e_write_s"})
    EXPECT_TRUE(s.contains(k)) << "student row lacks " << k << ": " << s.dump();
  EXPECT_EQ(s["windows"], 8);
  EXPECT_EQ(s["window_case"], "2x32x32x32");
  EXPECT_EQ(report.rows[3]["windows"], 8);
  EXPECT_EQ(s["distill_cached_teachers"], Json({"unetr", "unetr_32"}));
  // Live teachers: only those trained on the student's patch; the other is noted.
  EXPECT_EQ(s["distill_live_teachers"], Json({"unetr"}));
  EXPECT_NE(s["notes"].dump().find("teacher unetr_32 (patch 32x32x32) only runs from its cache"), std::string::npos)
      << s["notes"].dump();
  EXPECT_DOUBLE_EQ(s["distill_cached_ratio"].get<double>(),
                   s["distill_cached_s"].get<double>() / s["distill_student_s"].get<double>());
  // Train/window/e2e run at the patch only: the other rows hold the forward alone.
  EXPECT_TRUE(report.rows[1].contains("forward_s"));
  EXPECT_FALSE(report.rows[1].contains("train_step_s"));
  EXPECT_TRUE(report.rows[3].contains("train_step_s"));
  // The size rule (multiples of 16), learnt from each model's first measurement, skips 24^3 without running it.
  for (size_t i : {2, 5}) {
    EXPECT_FALSE(report.rows[i].contains("forward_s"));
    EXPECT_NE(report.rows[i]["error"].get<std::string>().find("divisible by 16, got 24x24x24"), std::string::npos)
        << report.rows[i].dump();
  }
  // Tiny configurations are not the paper ones: no reference numbers attached.
  EXPECT_FALSE(report.rows[3].contains("reference_forward_s"));

  std::set<std::string> targets;
  for (const auto& t : report.targets) {
    targets.insert(t["target"].get<std::string>());
    const bool at_most = t["unit"] == "s" || t["unit"] == "MiB" ||
                         t["target"].get<std::string>().find("1.3x") != std::string::npos;
    EXPECT_EQ(t["met"].get<bool>(), at_most ? t["value"].get<double>() <= t["limit"].get<double>()
                                            : t["value"].get<double>() >= t["limit"].get<double>())
        << t.dump();
  }
  EXPECT_TRUE(targets.count("teachformer_s forward >= 50x faster than unetr at 1x2x16x16x16")) << Json(targets).dump();
  EXPECT_TRUE(targets.count("teachformer_s forward >= 50x faster than unetr at 1x2x32x32x32")) << Json(targets).dump();
  EXPECT_TRUE(targets.count("distillation step with the teacher cache <= 1.3x a student-only step"));
  // No SwinUNETR-48 measured: no 100x target.
  for (const auto& t : targets) EXPECT_EQ(t.find("100x"), std::string::npos) << t;
  EXPECT_EQ(report.targets.size(), 7u) << Json(report.targets).dump();

  // Every measurement logged one line, the skips too: 6 forward, 2 train, 3 distill, 2 window, 1 e2e.
  EXPECT_EQ(log.size(), 14u);

  // Formats: CSV has the fixed columns on every line; JSON is the rows; markdown has one table per section.
  const auto csv = parse_csv(format_csv(report));
  ASSERT_EQ(csv.size(), report.rows.size() + 1);
  for (const auto& line : csv) EXPECT_EQ(line.size(), bench_csv_columns().size());
  EXPECT_EQ(csv[0], bench_csv_columns());
  EXPECT_EQ(csv[1][0], "teachformer_s");
  EXPECT_EQ(csv[1][size_t(std::find(csv[0].begin(), csv[0].end(), "distill_cached_teachers") - csv[0].begin())],
            "unetr;unetr_32");
  EXPECT_EQ(rows_json(report).size(), report.rows.size());
  const std::string md = format_markdown(report);
  for (const char* h : {"### Machine", "### Forward", "### Training step", "### Distillation step", "### Sliding window",
                        "### End to end", "### Targets", "### Notes"})
    EXPECT_NE(md.find(h), std::string::npos) << h;
  EXPECT_NE(md.find("| unetr | 1x2x32x32x32 |"), std::string::npos) << md;
  // The end-to-end row gives each phase with its share of the case, e.g. "0.0123 s (41%)".
  EXPECT_NE(md.find("| preprocess | network | restore | write |"), std::string::npos) << md;
  EXPECT_TRUE(std::regex_search(md, std::regex(R"(\| [0-9.e-]+ s \([0-9]+%\) \| [0-9.e-]+ s \([0-9]+%\) \|)"))) << md;
  EXPECT_EQ(to_json(report)["rows"], rows_json(report));
  EXPECT_GT(report.machine["matmul_gflops"].get<double>(), 0.0);
}

TEST_F(BenchRun, LowPrecisionRowsStandBesideFp32WithTheirAgreementAndTarget) {
  if (!models::low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  BenchOptions o;
  o.models = {tiny_student(), tiny_unetr()};
  o.inputs = {{1, 2, 16, 16, 16}};
  o.sections = {BenchSection::Forward};
  o.precisions = {"int8", "fp32", "bf16"};
  o.repeats = 1;
  o.budget_s = 0;
  o.matmul_size = 64;
  o.runner = in_process_runner();
  const BenchReport report = run_bench(o);
  std::vector<std::pair<std::string, std::string>> ids;
  for (const auto& r : report.rows) ids.emplace_back(r["model"], r["precision"]);
  // fp32 first; the teacher has no low-precision path: one fp32 row with notes, no int8/bf16 rows. A CPU without
  // bf16 kernels (no AVX-512) gives the student no bf16 row but a note saying why.
  const bool bf16 = models::low_precision_support().bf16_kernels();
  std::vector<std::pair<std::string, std::string>> expected = {
      {"teachformer_s", "fp32"}, {"teachformer_s", "int8"}, {"teachformer_s", "bf16"}, {"unetr", "fp32"}};
  if (!bf16) expected.erase(expected.begin() + 2);
  ASSERT_EQ(ids, expected) << Json(report.rows).dump();
  if (!bf16)
    EXPECT_NE(report.rows[0]["notes"].dump().find("bf16 skipped: oneDNN has no bf16 kernels"), std::string::npos)
        << report.rows[0].dump();
  const size_t teacher = bf16 ? 3 : 2;
  for (size_t i : bf16 ? std::vector<size_t>{1, 2} : std::vector<size_t>{1}) {
    const Json& r = report.rows[i];
    ASSERT_TRUE(r.contains("forward_s")) << r.dump();
    EXPECT_GT(r["agreement_vs_fp32"].get<double>(), 0.5) << r.dump();
    EXPECT_GT(r["rel_error_vs_fp32"].get<double>(), 0.0) << r.dump();
    EXPECT_EQ(r["gflops"], report.rows[0]["gflops"]);
  }
  EXPECT_FALSE(report.rows[0].contains("agreement_vs_fp32"));
  EXPECT_NE(report.rows[teacher]["notes"].dump().find("int8 skipped: model unetr has no int8 path"),
            std::string::npos)
      << report.rows[teacher].dump();
  std::set<std::string> targets;
  for (const auto& t : report.targets) targets.insert(t["target"].get<std::string>());
  EXPECT_TRUE(targets.count("teachformer_s int8 forward >= 2x faster than fp32 at 1x2x16x16x16")) << Json(targets).dump();
  EXPECT_TRUE(targets.count("teachformer_s forward >= 50x faster than unetr at 1x2x16x16x16")) << Json(targets).dump();
  // The markdown's forward table has the precision column; the CSV has the column too.
  EXPECT_NE(format_markdown(report).find("| teachformer_s | 1x2x16x16x16 | int8 |"), std::string::npos)
      << format_markdown(report);
  EXPECT_NE(format_csv(report).find(",int8,"), std::string::npos);
}

TEST_F(BenchRun, AStudentMissingFromTheModelsIsARunNote) {
  BenchOptions o;
  o.models = {tiny_unetr()};
  o.sections = {BenchSection::Distill, BenchSection::EndToEnd};
  o.matmul_size = 64;
  o.runner = in_process_runner();
  const BenchReport r = run_bench(o);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("student 'teachformer_s' is not among the models"), std::string::npos);
  EXPECT_TRUE(r.targets.empty());
}

TEST_F(BenchRun, BadOptionsAreRefused) {
  BenchOptions o;
  o.runner = in_process_runner();
  EXPECT_NE(message_of([&] { run_bench(o); }).find("no model"), std::string::npos);
  o.models = {tiny_student(), tiny_student()};
  EXPECT_NE(message_of([&] { run_bench(o); }).find("'teachformer_s' is listed twice"), std::string::npos);
  o.models = {tiny_student()};
  o.repeats = 0;
  EXPECT_NE(message_of([&] { run_bench(o); }).find("repeats must be >= 1"), std::string::npos);
  o.repeats = 1;
  o.runner = nullptr;
  EXPECT_NE(message_of([&] { run_bench(o); }).find("no task runner"), std::string::npos);
}

}  // namespace
}  // namespace teachformer::bench
