// What happens to a run and its files when the world misbehaves, driven through the real binary with real signals
// and real processes: SIGTERM/SIGUSR1/SIGINT, kill -9 at random moments, two processes on one folder, a full disk,
// a memory limit, and dataset files that point outside their folder.
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/io/safetensors.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// A teachformer process running in the background, its output in a file.
class Background {
 public:
  Background(const std::string& args, const fs::path& log) : log_(log) {
    const std::string cmd = "exec " + q(cli_path()) + " " + args + " > " + q(log) + " 2>&1";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      wait(60);
    }
  }
  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  // Waits up to `seconds`; the exit status (128 + signal when a signal ended it), or -1 on timeout.
  int wait(double seconds) {
    const auto until = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        done_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string output() const { return read_file(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  bool done_ = false;
};

int steps_logged(const fs::path& fold) {
  std::ifstream in(fold / "log.jsonl");
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find("\"type\":\"step\"") != std::string::npos;
  return n;
}

bool wait_for_steps(const fs::path& fold, int steps, double seconds) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    if (steps_logged(fold) >= steps) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The first file (not a dot file) that appears in `dir`, waiting up to `seconds`.
bool wait_for_file(const fs::path& dir, double seconds) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < until) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().filename().string().front() != '.' && it->is_regular_file()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// The command a stopped run printed after "continue with: ".
std::string continue_command(const std::string& text) {
  const auto at = text.find("continue with: ");
  if (at == std::string::npos) return "";
  std::string command = text.substr(at + 15);
  return command.substr(0, command.find('\n'));
}

// Every tensor of two weight files is bit-identical.
void expect_same_weights(const fs::path& a, const fs::path& b) {
  const auto wa = io::read_safetensors(a), wb = io::read_safetensors(b);
  ASSERT_EQ(wa.tensors.size(), wb.tensors.size());
  for (const auto& [name, t] : wa.tensors) {
    ASSERT_TRUE(wb.contains(name)) << name;
    EXPECT_TRUE(torch::equal(t, wb.at(name))) << name << " differs between " << a << " and " << b;
  }
}

int temporaries_in(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    n += e.path().filename().string().rfind(".tmp-", 0) == 0;
  return n;
}

class Reliability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto raw = *dir_ / "raw";
    auto r = run_cli("-q synth -o " + q(raw) + " --cases 6 --size 56,56,20 --bbox-mm 48 --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q preprocess " + q(raw) + " -o " + q(*dir_ / "pre") + " --target-spacing 1.5,1.5,1.5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // The uninterrupted reference run every interrupted one must end identical to (trained on first use).
  static fs::path reference() {
    const auto out = *dir_ / "reference";
    if (reference_seconds_ == 0) {
      const auto t0 = Clock::now();
      const auto r = run_cli(train_args(out));
      EXPECT_EQ(r.exit_code, 0) << r.output;
      reference_seconds_ = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    return out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // Deterministic, one thread: reruns and resumes are bit-identical. 4 epochs of 6 steps, a checkpoint per epoch.
  static std::string train_args(const fs::path& out, const std::string& extra = "", int epochs = 4) {
    return "-q --threads 1 train -d " + q(*dir_ / "pre") + " -m teachformer_s -f 0 --folds 3 --preset tiny " +
           "--epochs " + std::to_string(epochs) + " --steps-per-epoch 6 -c '{\"trainer\": {\"deterministic\": " +
           "true, \"val_every\": 2, \"workers\": 1}}' -o " + q(out) + " " + extra;
  }
  static fs::path final_weights(const fs::path& model) { return model / "fold_0" / "checkpoint_final.safetensors"; }
  static TempDir* dir_;
  static double reference_seconds_;
};
TempDir* Reliability::dir_ = nullptr;
double Reliability::reference_seconds_ = 0;

TEST_F(Reliability, SigtermInsideAnEpochSavesSaysHowToContinueAndTheContinuedRunIsIdentical) {
  const auto out = *dir_ / "sigterm";
  Background run(train_args(out), *dir_ / "sigterm.log");
  ASSERT_TRUE(wait_for_steps(out / "fold_0", 8, 120)) << run.output();  // inside the second epoch
  const auto sent = Clock::now();
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait(60), 143) << run.output();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - sent).count(), 20.0);
  const std::string text = run.output();
  EXPECT_NE(text.find("interrupted by SIGTERM; resume checkpoint written at step"), std::string::npos) << text;
  const auto at = text.find("continue with: ");
  ASSERT_NE(at, std::string::npos) << text;
  std::string command = text.substr(at + 15);
  command = command.substr(0, command.find('\n'));
  EXPECT_NE(command.find("--resume"), std::string::npos) << command;
  EXPECT_EQ(temporaries_in(out), 0);
  const auto r = run_command(command);  // the printed command, exactly
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_weights(final_weights(reference()), final_weights(out));
}

TEST_F(Reliability, PreemptionSignalStopsLikeSigtermAndASecondSignalStopsAtOnce) {
  const auto out = *dir_ / "usr1";
  {
    Background run(train_args(out), *dir_ / "usr1.log");
    ASSERT_TRUE(wait_for_steps(out / "fold_0", 3, 120)) << run.output();
    run.signal(SIGUSR1);
    EXPECT_EQ(run.wait(60), 138) << run.output();
    EXPECT_NE(run.output().find("continue with: "), std::string::npos) << run.output();
  }
  const auto out2 = *dir_ / "sigint";
  Background run(train_args(out2), *dir_ / "sigint.log");
  ASSERT_TRUE(wait_for_steps(out2 / "fold_0", 2, 120)) << run.output();
  run.signal(SIGINT);
  // Signals of one kind do not queue: the second is sent once the first has been seen.
  const auto until = Clock::now() + std::chrono::seconds(20);
  while (run.output().find("stop requested") == std::string::npos && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  run.signal(SIGINT);
  EXPECT_EQ(run.wait(30), 130) << run.output();
  EXPECT_NE(run.output().find("second signal"), std::string::npos) << run.output();
}

// kill -9 at random moments (during steps, validations, checkpoint writes, start-up), each followed by a resume that
// is killed again, until one finishes: it must end with the reference run's weights, bit for bit.
TEST_F(Reliability, KillNineAtRandomMomentsThenResumeEndsBitIdentical) {
  const auto out = *dir_ / "kill9";
  const unsigned seed = unsigned(std::chrono::system_clock::now().time_since_epoch().count() % 100000);
  std::mt19937 rng(seed);
  const fs::path ref = reference();
  std::uniform_real_distribution<double> moment(0.2, std::max(0.5, 0.8 * reference_seconds_));
  std::string moments;
  for (int k = 0; k < 6; ++k) {
    const double delay = moment(rng);
    Background run(train_args(out, "--resume"), *dir_ / "kill9.log");
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    run.signal(SIGKILL);
    run.wait(30);
    moments += " " + std::to_string(delay).substr(0, 4) + "s(step " + std::to_string(steps_logged(out / "fold_0")) + ")";
  }
  const auto r = run_cli(train_args(out, "--resume"));
  ASSERT_EQ(r.exit_code, 0) << r.output << "\nkilled at" << moments << " (seed " << seed << ")";
  expect_same_weights(final_weights(ref), final_weights(out));
  EXPECT_EQ(temporaries_in(out), 0) << "killed at" << moments;
  std::printf("kill -9 moments (seed %u):%s\n", seed, moments.c_str());
}

// What a run killed while writing leaves behind, in the model folder and in its fold folder, is removed by the next
// start; a live writer's temporary is kept. (A kill -9 during start-up once left one in the model folder itself.)
TEST_F(Reliability, TemporariesOfAKilledRunAreRemovedFromTheModelAndFoldFolders) {
  const auto out = *dir_ / "stale";
  fs::create_directories(out / "fold_0");
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = ".tmp-" + std::to_string(dead) + "-0-";
  std::ofstream(out / (stale + "config.json")) << "{\"half";
  std::ofstream(out / "fold_0" / (stale + "checkpoint_latest.safetensors")) << "half";
  const auto live = out / (".tmp-" + std::to_string(::getpid()) + "-1-plan.json");
  std::ofstream(live) << "being written";
  const auto r = run_cli(train_args(out, "", 1));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(out / (stale + "config.json")));
  EXPECT_FALSE(fs::exists(out / "fold_0" / (stale + "checkpoint_latest.safetensors")));
  EXPECT_TRUE(fs::exists(live));
  fs::remove(live);
  EXPECT_EQ(temporaries_in(out), 0);
}

// Prediction killed at random moments and continued with --continue: the same label maps as one uninterrupted run.
TEST_F(Reliability, PredictionKilledAtRandomMomentsAndContinuedGivesTheSameLabels) {
  const fs::path model = reference();
  const auto args = [&](const fs::path& out) {
    return "-q --threads 1 predict -i " + q(*dir_ / "raw") + " -o " + q(out) + " -m " + q(model) + " --continue";
  };
  const auto t0 = Clock::now();
  auto r = run_cli(args(*dir_ / "pred_ref"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::mt19937 rng(unsigned(std::chrono::system_clock::now().time_since_epoch().count() % 100000));
  std::uniform_real_distribution<double> moment(0.1, std::max(0.3, seconds));
  const auto out = *dir_ / "pred_killed";
  for (int k = 0; k < 4; ++k) {
    Background run(args(out), *dir_ / "pred_killed.log");
    std::this_thread::sleep_for(std::chrono::duration<double>(moment(rng)));
    run.signal(SIGKILL);
    run.wait(30);
  }
  r = run_cli(args(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int files = 0;
  for (const auto& e : fs::directory_iterator(*dir_ / "pred_ref")) {
    if (e.path().filename().string().front() == '.') continue;
    ++files;
    ASSERT_TRUE(fs::exists(out / e.path().filename())) << e.path();
    EXPECT_TRUE(torch::equal(io::read_image(e.path()).data, io::read_image(out / e.path().filename()).data))
        << e.path().filename();
  }
  EXPECT_EQ(files, 6);
  EXPECT_EQ(temporaries_in(out), 0);
}

// SIGTERM while predict writes its cases: the current case is finished, the command to continue is printed, and the
// printed command completes the folder with the same labels as an uninterrupted run. The process is paused (SIGSTOP)
// as soon as its first case appears, so the signal always lands inside the run.
TEST_F(Reliability, SigtermDuringPredictionStopsAfterTheCurrentCaseAndThePrintedCommandContinues) {
  const fs::path model = reference();
  const auto args = [&](const fs::path& out) {
    return "-q --threads 1 predict -i " + q(*dir_ / "raw") + " -o " + q(out) + " -m " + q(model);
  };
  auto r = run_cli(args(*dir_ / "pred_term_ref"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto out = *dir_ / "pred_term";
  Background run(args(out), *dir_ / "pred_term.log");
  ASSERT_TRUE(wait_for_file(out, 120)) << run.output();
  run.signal(SIGSTOP);
  run.signal(SIGTERM);
  run.signal(SIGCONT);
  ASSERT_EQ(run.wait(60), 143) << run.output();
  const std::string command = continue_command(run.output());
  ASSERT_NE(command.find("--continue"), std::string::npos) << run.output();
  int written = 0;
  for (const auto& e : fs::directory_iterator(out)) written += e.path().filename().string().front() != '.';
  EXPECT_LT(written, 6) << run.output();
  EXPECT_EQ(temporaries_in(out), 0);
  r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& e : fs::directory_iterator(*dir_ / "pred_term_ref")) {
    if (e.path().filename().string().front() == '.') continue;
    ASSERT_TRUE(fs::exists(out / e.path().filename())) << e.path();
    EXPECT_TRUE(torch::equal(io::read_image(e.path()).data, io::read_image(out / e.path().filename()).data))
        << e.path().filename();
  }
}

// SIGTERM while preprocess writes its cases: it stops with 143 and the command to run again; that command finishes
// the folder, and every case is the same as in a folder preprocessed in one go.
TEST_F(Reliability, SigtermDuringPreprocessingStopsAndThePrintedCommandFinishesTheSameCases) {
  const auto out = *dir_ / "pre_term";
  Background run("-q --threads 1 preprocess " + q(*dir_ / "raw") + " -o " + q(out) + " --target-spacing 1.5,1.5,1.5",
                 *dir_ / "pre_term.log");
  ASSERT_TRUE(wait_for_file(out / "cases", 120)) << run.output();
  run.signal(SIGSTOP);
  run.signal(SIGTERM);
  run.signal(SIGCONT);
  ASSERT_EQ(run.wait(60), 143) << run.output();
  const std::string command = continue_command(run.output());
  ASSERT_FALSE(command.empty()) << run.output();
  EXPECT_EQ(temporaries_in(out), 0);
  const auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ref = data::open_preprocessed(*dir_ / "pre"), got = data::open_preprocessed(out);
  ASSERT_EQ(got.case_ids(), ref.case_ids());
  for (const auto& id : ref.case_ids()) {
    const auto a = ref.load_case(id), b = got.load_case(id);
    EXPECT_TRUE(torch::equal(a.image, b.image)) << id;
    EXPECT_TRUE(torch::equal(a.label, b.label)) << id;
  }
}

// SIGTERM during an experiment (in-process jobs): 143, the command to continue, and running it finishes the
// experiment without training again what was finished before the signal.
TEST_F(Reliability, SigtermDuringAnExperimentStopsAndRunningItAgainFinishesIt) {
  const auto exp = *dir_ / "exp_term";
  const std::string args = "--threads 1 experiment --preset tiny -o " + q(exp) +
                           " --teachers unetr --students student_alone --cases 5 --test-cases 2";
  Background run("-q " + args, *dir_ / "exp_term.log");
  ASSERT_TRUE(wait_for_steps(exp / "seed_0" / "models" / "unetr" / "fold_0", 2, 300)) << run.output();
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(60), 143) << run.output();
  const std::string command = continue_command(run.output());
  ASSERT_FALSE(command.empty()) << run.output();
  EXPECT_TRUE(fs::exists(exp / "seed_0" / "models" / "unetr" / "fold_0" / "checkpoint_latest.safetensors"));
  const auto r = run_command(command);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(exp / "results.json")) << r.output;
}

// Under an address-space limit (ulimit -v, a batch system's memory limit) prediction works when the limit leaves room
// (4 GiB here) and is one clear line when it does not (1 GiB), never a hang or a crash.
TEST_F(Reliability, AnAddressSpaceLimitIsEnoughOrOneClearLine) {
  const fs::path model = reference();
  const auto under = [&](int mib, const fs::path& out) {
    return run_command("ulimit -v " + std::to_string(mib * 1024) + "; exec " + q(cli_path()) +
                       " --threads 2 predict -i " + q(*dir_ / "raw") + " -o " + q(out) + " -m " + q(model));
  };
  auto r = under(4096, *dir_ / "pred_4g");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = under(1024, *dir_ / "pred_1g");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: the address-space limit (ulimit -v) of 1024 MiB leaves"), std::string::npos)
      << r.output;
}

TEST_F(Reliability, ResumeWithAChangedSettingIsRefusedNamingIt) {
  const auto r = run_cli(train_args(reference(), "--resume --seed 9"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot resume"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/trainer/seed: 9 now, "), std::string::npos) << r.output;
}

TEST_F(Reliability, TwoTrainingsOfOneFolderTheSecondIsRefusedNamingTheFirstsPid) {
  const auto out = *dir_ / "shared_model";
  Background first(train_args(out), *dir_ / "shared_model.log");
  ASSERT_TRUE(wait_for_steps(out / "fold_0", 1, 120)) << first.output();
  first.signal(SIGSTOP);  // it holds the folder for as long as the second one needs to start
  const auto second = run_cli(train_args(out));
  first.signal(SIGCONT);
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("is in use by another process (pid " + std::to_string(first.pid())), std::string::npos)
      << second.output;
  EXPECT_EQ(first.wait(300), 0) << first.output();
  expect_same_weights(final_weights(reference()), final_weights(out));
}

TEST_F(Reliability, TwoPreprocessingsOfOneFolderShareItWithoutHalfWrittenCases) {
  const auto out = *dir_ / "pre_shared";
  const std::string args = "-q --threads 1 preprocess " + q(*dir_ / "raw") + " -o " + q(out) +
                           " --target-spacing 1.5,1.5,1.5";
  Background a(args, *dir_ / "pre_a.log"), b(args, *dir_ / "pre_b.log");
  EXPECT_EQ(a.wait(300), 0) << a.output();
  EXPECT_EQ(b.wait(300), 0) << b.output();
  const auto ds = data::open_preprocessed(out);
  EXPECT_EQ(ds.case_ids().size(), 6u);
  for (const auto& id : ds.case_ids()) EXPECT_NO_THROW(ds.load_case(id)) << id;
  EXPECT_EQ(temporaries_in(out), 0);
}

TEST_F(Reliability, FullDiskWhileSavingNamesTheFileAndKeepsThePreviousCheckpoint) {
  TempDir tmp;
  const fs::path mnt = tmp / "small";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0)
    GTEST_SKIP() << "mounting a small tmpfs needs root here (the unit tests inject the write failure instead)";
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const auto out = mnt / "model";
  auto r = run_cli(train_args(out, "", 1));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto latest = out / "fold_0" / "checkpoint_latest.safetensors";
  const std::string before = read_file(latest);
  // Leave less room than one checkpoint.
  const auto space = fs::space(mnt);
  const auto fill = space.available > before.size() / 2 ? space.available - before.size() / 2 : 0;
  write_file_atomic(mnt / "filler", std::string(size_t(fill), '\0'));
  r = run_cli(train_args(out, "--resume --allow-changed-settings", 2));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no space left on the device"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(out.string()), std::string::npos) << r.output;
  EXPECT_EQ(read_file(latest), before);
  EXPECT_EQ(temporaries_in(out), 0);
  // With room again, the same command continues.
  fs::remove(mnt / "filler");
  r = run_cli(train_args(out, "--resume --allow-changed-settings", 2));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(Reliability, DatasetJsonPathsThatLeaveTheDatasetAreRefusedNamingTheEntry) {
  const auto ds = *dir_ / "escape";
  const auto made = run_cli("-q synth -o " + q(ds) + " --layout nnunet --cases 2 --size 56,56,20 --bbox-mm 48");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto j = read_json(ds / "dataset.json");
  std::ofstream(*dir_ / "outside.nii.gz") << "not for you";
  j["dataset"] = {{"evil", {{"images", {"../outside.nii.gz", "imagesTr/x.nii.gz"}}, {"label", "/etc/passwd"}}}};
  write_json(ds / "dataset.json", j);
  const auto r = run_cli("-q preprocess " + q(ds) + " -o " + q(*dir_ / "escape_pre"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("'../outside.nii.gz' climbs out of the folder"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "escape_pre" / "evil.safetensors"));
  const auto v = run_cli("verify " + q(ds));
  EXPECT_NE(v.output.find("'/etc/passwd' is an absolute path"), std::string::npos) << v.output;
}

}  // namespace
}  // namespace teachformer::test
