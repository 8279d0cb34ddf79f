// Data-parallel training through the CLI: 2 ranks equal 1 process with the global batch, a failed rank ends the
// job, a 2-rank run resumes exactly, and bad rendezvous settings are one-line errors.
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "teachformer/core/json.hpp"
#include "teachformer/dist/world.hpp"
#include "teachformer/io/safetensors.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// Whether two checkpoints' model weights agree: ||a - b|| <= rtol ||b|| over all weights together (rtol 0:
// bit-identical). Single tensors that stay near 0 (norm biases) make a per-tensor ratio meaningless, so the ratio
// is the whole model's; the largest tensor share is printed.
bool weights_close(const fs::path& a, const fs::path& b, double rtol) {
  const auto ta = io::read_safetensors(a), tb = io::read_safetensors(b);
  double diff2 = 0, norm2 = 0, worst = 0;
  std::string worst_name;
  bool identical = true;
  size_t compared = 0;
  for (const auto& [name, t] : ta.tensors) {
    if (!tb.contains(name) || !t.is_floating_point()) continue;
    const auto u = tb.at(name);
    identical = identical && torch::equal(t, u);
    const double d = (t - u).to(torch::kDouble).square().sum().item<double>();
    diff2 += d;
    norm2 += u.to(torch::kDouble).square().sum().item<double>();
    if (d > worst) worst = d, worst_name = name;
    ++compared;
  }
  EXPECT_GT(compared, 10u);
  const double ratio = std::sqrt(diff2 / std::max(norm2, 1e-30));
  std::printf("weights: ||a - b|| / ||b|| = %.3g (largest share in %s)\n", ratio, worst_name.c_str());
  return rtol == 0 ? identical : ratio <= rtol;
}

// The total loss of every step in a model folder's log.
std::vector<double> step_losses(const fs::path& model) {
  std::vector<double> out;
  std::ifstream in(model / "fold_0" / "log.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") == "step") out.push_back(j.at("loss").at("total").get<double>());
  }
  return out;
}

void expect_same_losses(const fs::path& a, const fs::path& b) {
  const auto la = step_losses(a), lb = step_losses(b);
  ASSERT_EQ(la.size(), lb.size());
  ASSERT_FALSE(la.empty());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(lb[i])) << "step " << i;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class Distributed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto raw = *dir_ / "raw";
    auto r = run_cli("-q synth -o " + q(raw) + " --cases 6 --size 56,56,20 --bbox-mm 48 --seed 5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q preprocess " + q(raw) + " -o " + q(*dir_ / "pre") + " --target-spacing 3,3,3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A deterministic tiny run of `verb` (train or distill) with `extra` flags into `out`.
  static std::string job(const std::string& verb, const fs::path& out, const std::string& extra, int epochs = 2) {
    return "-q " + verb + " -d " + q(*dir_ / "pre") + " -m teachformer_s --preset tiny -f 0 --folds 3 --epochs " +
           std::to_string(epochs) + " --steps-per-epoch 3 -o " + q(out) +
           " -c '{\"trainer\": {\"deterministic\": true, \"workers\": 1, \"val_every\": 1, "
           "\"optimizer\": {\"name\": \"sgd\", \"lr\": 0.01}}}' " + extra;
  }
  static TempDir* dir_;
};
TempDir* Distributed::dir_ = nullptr;

TEST_F(Distributed, TwoRanksOfBatchOneEqualOneProcessOfBatchTwoForTrain) {
  const auto& d = *dir_;
  auto r = run_cli("--threads 1 " + job("train", d / "one", "--batch-size 2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli(job("train", d / "two", "--batch-size 1 --nproc-per-node 2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(weights_close(d / "two" / "fold_0" / "checkpoint_final.safetensors",
                            d / "one" / "fold_0" / "checkpoint_final.safetensors", 1e-4));
  expect_same_losses(d / "two", d / "one");
  // The model folder says how it was trained; only rank 0 wrote the log.
  EXPECT_EQ(read_json(d / "two" / "config.json").at("world_size"), 2);
  EXPECT_NE(read_text(d / "two" / "fold_0" / "log.jsonl").find("\"world_size\":2"), std::string::npos);
}

TEST_F(Distributed, TwoRanksEqualOneProcessForCachedDistillation) {
  const auto& d = *dir_;
  auto r = run_cli("-q train -d " + q(d / "pre") + " -m unetr --preset tiny -f 0 --folds 3 -o " + q(d / "teacher"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string teacher = " --teacher " + q(d / "teacher") + " --strategy multi_no_staging";
  r = run_cli("--threads 1 " + job("distill", d / "d_one", "--batch-size 2" + teacher));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli(job("distill", d / "d_two", "--batch-size 1 --nproc-per-node 2" + teacher));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(weights_close(d / "d_two" / "fold_0" / "checkpoint_final.safetensors",
                            d / "d_one" / "fold_0" / "checkpoint_final.safetensors", 1e-4));
  expect_same_losses(d / "d_two", d / "d_one");
}

TEST_F(Distributed, AKilledRankEndsTheJobNamingTheRank) {
  const auto& d = *dir_;
  const fs::path out = d / "killed";
  fs::create_directories(out);
  // The launcher in the background; kill -9 one of its ranks once training runs.
  const std::string cmd = "(" + q(cli_path()) + " " + job("train", out / "model", "--batch-size 1 --nproc-per-node 2", 400) +
                          " > " + q(out / "launcher.log") + " 2>&1; echo $? > " + q(out / "launcher.rc") +
                          ") > /dev/null 2>&1 & echo $! > " + q(out / "shell.pid");
  ASSERT_EQ(run_command(cmd).exit_code, 0);
  // Wait for a step record in the log (training has started on both ranks).
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    started = read_text(out / "model" / "fold_0" / "log.jsonl").find("\"type\":\"step\"") != std::string::npos;
  }
  ASSERT_TRUE(started) << read_text(out / "launcher.log");
  // The ranks are the launcher's children (subshell -> launcher -> ranks): kill the newest rank.
  const auto r = run_command("kill -9 $(pgrep -n -P $(pgrep -P $(cat " + q(out / "shell.pid") + ")))");
  ASSERT_EQ(r.exit_code, 0) << "no rank process found: " << r.output << run_command("ps -ef | grep [t]eachformer").output
                            << read_text(out / "launcher.log");
  const auto t0 = std::chrono::steady_clock::now();
  bool ended = false;
  for (int i = 0; i < 600 && !ended; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ended = fs::exists(out / "launcher.rc") && !read_text(out / "launcher.rc").empty();
  }
  ASSERT_TRUE(ended) << read_text(out / "launcher.log");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 45.0);
  EXPECT_NE(std::stoi(read_text(out / "launcher.rc")), 0);
  const std::string log = read_text(out / "launcher.log");
  EXPECT_NE(log.find("rank "), std::string::npos) << log;
  EXPECT_NE(log.find("of 2 (127.0.0.1:"), std::string::npos) << log;
}

TEST_F(Distributed, AKilledTwoRankRunResumesExactlyAndOnlyWithTwoRanks) {
  const auto& d = *dir_;
  auto r = run_cli(job("train", d / "full", "--batch-size 1 --nproc-per-node 2", 4));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The same run killed (launcher and ranks, SIGKILL) once its first epoch is checkpointed, then resumed.
  const fs::path part = d / "part";
  fs::create_directories(part);
  ASSERT_EQ(run_command("(" + q(cli_path()) + " " + job("train", part / "model", "--batch-size 1 --nproc-per-node 2", 4) +
                        " > " + q(part / "run.log") + " 2>&1 &)")
                .exit_code,
            0);
  bool checkpointed = false;
  for (int i = 0; i < 1200 && !checkpointed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    checkpointed = read_text(part / "model" / "fold_0" / "log.jsonl").find("\"type\":\"epoch\"") != std::string::npos;
  }
  ASSERT_TRUE(checkpointed) << read_text(part / "run.log");
  run_command("pkill -9 -f '[t]eachformer.*part/model'");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  r = run_cli(job("train", part / "model", "--batch-size 1 --nproc-per-node 1 --resume", 4));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("2 process(es)"), std::string::npos) << r.output;
  r = run_cli(job("train", part / "model", "--batch-size 1 --nproc-per-node 2 --resume", 4));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(weights_close(part / "model" / "fold_0" / "checkpoint_final.safetensors",
                            d / "full" / "fold_0" / "checkpoint_final.safetensors", 0));  // bit-identical
}

TEST_F(Distributed, BadRendezvousSettingsAreOneLineErrors) {
  const auto& d = *dir_;
  const std::string port = std::to_string(dist::free_local_port());
  auto r = run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " + q(cli_path()) + " " +
                       job("train", d / "lonely", "--dist-timeout 2"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rank 1/2 (127.0.0.1:" + port + ")"), std::string::npos) << r.output;
  r = run_command("RANK=0 WORLD_SIZE=2 MASTER_PORT=" + port + " " + q(cli_path()) + " " + job("train", d / "x", ""));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("MASTER_ADDR"), std::string::npos) << r.output;
  r = run_command("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=99999 " + q(cli_path()) + " " +
                  job("train", d / "x", ""));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("MASTER_PORT"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace teachformer::test
