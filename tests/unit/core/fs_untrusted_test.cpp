// Durable writes on a full device, cleaning after killed runs, and paths from untrusted files.
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/stale_temporaries.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

int count_files(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

// A pid that ran and exited: its temporaries are stale.
pid_t finished_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST(StaleTemporaries, RemovesWhatDeadWritersLeftAndKeepsLiveOnes) {
  test::TempDir dir;
  const pid_t dead = finished_pid();
  std::ofstream(dir / (".tmp-" + std::to_string(dead) + "-0-checkpoint_latest.safetensors")) << "half";
  fs::create_directories(dir / (".tmp-" + std::to_string(dead) + "-1-case.mha"));  // a two-file writer's folder
  const auto live = dir / (".tmp-" + std::to_string(::getpid()) + "-7-log.jsonl");
  std::ofstream(live) << "being written";
  std::ofstream(dir / "keep.txt") << "data";
  EXPECT_EQ(remove_stale_temporaries(dir.path()), 2);
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(dir / "keep.txt"));
  EXPECT_EQ(count_files(dir.path()), 2);
  EXPECT_EQ(remove_stale_temporaries(dir / "missing"), 0);
}

TEST(StaleTemporaries, UnderAFolderReachesEverySubfolderButNotThroughLinks) {
  test::TempDir dir;
  test::TempDir outside;
  const pid_t dead = finished_pid();
  const std::string stale = ".tmp-" + std::to_string(dead) + "-0-";
  fs::create_directories(dir / "seed_0" / "predictions" / "student");
  std::ofstream(dir / (stale + "results.json")) << "{";
  std::ofstream(dir / "seed_0" / "predictions" / "student" / (stale + "case_0.nii.gz")) << "half";
  fs::create_directories(dir / (stale + "case.mha"));  // a two-file writer's folder, removed whole
  std::ofstream(dir / (stale + "case.mha") / "case.raw") << "half";
  const auto live = dir / "seed_0" / (".tmp-" + std::to_string(::getpid()) + "-1-stage.json");
  std::ofstream(live) << "being written";
  std::ofstream(outside / (stale + "theirs.json")) << "not ours";
  fs::create_directory_symlink(outside.path(), dir / "linked");
  EXPECT_EQ(remove_stale_temporaries_under(dir.path()), 3);
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(outside / (stale + "theirs.json")));  // behind a link: not ours to clean
  EXPECT_EQ(remove_stale_temporaries_under(dir / "missing"), 0);
}

TEST(AtomicWrite, FullDeviceNamesTheFileAndTheSpaceAndKeepsThePreviousFile) {
  test::TempDir dir;
  const fs::path mnt = dir / "small";
  fs::create_directories(mnt);
  // A 256 KiB tmpfs where the machine allows mounting (root in a container or VM); else the failure is injected.
  const bool mounted = ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") == 0;
  const fs::path target = mnt / "checkpoint.bin";
  write_file_atomic(target, std::string(64 * 1024, 'a'));
  if (mounted) {
    try {
      write_file_atomic(target, std::string(1024 * 1024, 'b'));
      ADD_FAILURE() << "a 1 MiB write on a 256 KiB device succeeded";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(target.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find("no space left"), std::string::npos) << msg;
      EXPECT_NE(msg.find("needs 1.0 MiB"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  } else {
    EXPECT_THROW(write_atomically(target, [](const fs::path& tmp) {
      std::ofstream(tmp) << "partial";
      throw IoError("write failed (injected)");
    }), IoError);
  }
  EXPECT_EQ(read_file(target), std::string(64 * 1024, 'a'));
  EXPECT_EQ(count_files(mnt), 1);  // no temporary left behind
  if (mounted) ::umount2(mnt.c_str(), MNT_DETACH);
}

TEST(UntrustedPaths, StayInsideTheirFolder) {
  test::TempDir dir;
  const fs::path root = dir / "dataset";
  fs::create_directories(root / "imagesTr");
  std::ofstream(root / "imagesTr" / "a.nii.gz") << "x";
  std::ofstream(dir / "secret.txt") << "x";
  EXPECT_EQ(path_escape_reason(root, "imagesTr/a.nii.gz"), "");
  EXPECT_EQ(path_escape_reason(root, "./imagesTr/../imagesTr/a.nii.gz"), "");
  EXPECT_EQ(path_escape_reason(root, "imagesTr/not_there_yet.nii.gz"), "");
  EXPECT_NE(path_escape_reason(root, "../secret.txt").find("'..'"), std::string::npos);
  EXPECT_NE(path_escape_reason(root, "imagesTr/../../secret.txt").find("'..'"), std::string::npos);
  EXPECT_NE(path_escape_reason(root, (dir / "secret.txt").string()).find("absolute"), std::string::npos);
  EXPECT_NE(path_escape_reason(root, "").find("empty"), std::string::npos);
  // Symbolic links: one out of the folder is refused, one inside it is fine.
  fs::create_symlink(dir / "secret.txt", root / "imagesTr" / "b.nii.gz");
  fs::create_directory_symlink(dir.path(), root / "up");
  fs::create_symlink(root / "imagesTr" / "a.nii.gz", root / "c.nii.gz");
  EXPECT_NE(path_escape_reason(root, "imagesTr/b.nii.gz").find("symbolic link"), std::string::npos);
  EXPECT_NE(path_escape_reason(root, "up/secret.txt").find("symbolic link"), std::string::npos);
  EXPECT_EQ(path_escape_reason(root, "c.nii.gz"), "");
  try {
    path_inside(root, "../secret.txt", "'dataset.json' training image");
    ADD_FAILURE() << "no error";
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("'dataset.json' training image: '../secret.txt'"), std::string::npos)
        << e.what();
  }
}

TEST(UntrustedPaths, CaseIdsArePlainFileNames) {
  EXPECT_EQ(unsafe_name_reason("hecktor_CHUM_001"), "");
  EXPECT_NE(unsafe_name_reason("../x"), "");
  EXPECT_NE(unsafe_name_reason("a/b"), "");
  EXPECT_NE(unsafe_name_reason(".."), "");
  EXPECT_NE(unsafe_name_reason(""), "");
  EXPECT_NE(unsafe_name_reason(std::string("a\0b", 3)), "");
}

}  // namespace
}  // namespace teachformer
