#include "teachformer/core/folder_lock.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/interrupt.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

namespace fs = std::filesystem;

TEST(FolderLock, SecondWriterIsRefusedNamingTheHoldersPid) {
  test::TempDir dir;
  const FolderLock first(dir / "model", "model fold folder", FolderLock::Mode::Refuse);
  EXPECT_NE(FolderLock::holder(dir / "model").find("pid " + std::to_string(::getpid())), std::string::npos);
  try {
    FolderLock second(dir / "model", "model fold folder", FolderLock::Mode::Refuse);
    ADD_FAILURE() << "the second lock was granted";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("is in use by another process (pid " + std::to_string(::getpid())), std::string::npos) << msg;
    EXPECT_NE(msg.find((dir / "model").string()), std::string::npos) << msg;
  }
}

TEST(FolderLock, IsFreeAgainWhenItsHolderEndsEvenByKill) {
  test::TempDir dir;
  { const FolderLock lock(dir / "cache", "teacher cache", FolderLock::Mode::Refuse); }
  EXPECT_EQ(FolderLock::holder(dir / "cache"), "");
  const pid_t child = ::fork();
  if (child == 0) {
    const FolderLock lock(dir / "cache", "teacher cache", FolderLock::Mode::Refuse);
    ::pause();
    ::_exit(0);
  }
  // The child takes the lock before it records its pid; wait until the record is there.
  const std::string expected = "pid " + std::to_string(child);
  for (int i = 0; i < 250 && FolderLock::holder(dir / "cache").find(expected) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(FolderLock::holder(dir / "cache").find(expected), std::string::npos);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_NO_THROW(FolderLock(dir / "cache", "teacher cache", FolderLock::Mode::Refuse));
}

// Racing processes: writers that wait for the lock never interleave their writes.
TEST(FolderLock, WaitingWritersNeverInterleave) {
  test::TempDir dir;
  const fs::path journal = dir / "shared" / "journal.txt";
  fs::create_directories(journal.parent_path());
  std::vector<pid_t> children;
  for (int k = 0; k < 4; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const FolderLock lock(dir / "shared", "shared folder", FolderLock::Mode::Wait);
      for (int line = 0; line < 20; ++line) {
        std::ofstream(journal, std::ios::app) << k << '\n';
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::ifstream in(journal);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 80u);
  for (size_t block = 0; block < 4; ++block)
    for (size_t i = 1; i < 20; ++i) EXPECT_EQ(lines[block * 20 + i], lines[block * 20]) << "interleaved at " << block * 20 + i;
}

TEST(FolderLock, AStopRequestEndsTheWait) {
  test::TempDir dir;
  const FolderLock held(dir / "pre", "preprocessed dataset", FolderLock::Mode::Refuse);
  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    request_stop(SIGTERM);
  });
  EXPECT_THROW(FolderLock(dir / "pre", "preprocessed dataset", FolderLock::Mode::Wait), Interrupted);
  stopper.join();
  clear_stop_request();
}

}  // namespace
}  // namespace teachformer
