#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

TEST(AtomicWrite, ReplacesTargetAndLeavesNoTemporary) {
  test::TempDir dir;
  const auto target = dir / "a.txt";
  write_file_atomic(target, "one");
  write_file_atomic(target, "two");
  EXPECT_EQ(read_file(target), "two");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
}

TEST(AtomicWrite, FailedWriterKeepsOldContent) {
  test::TempDir dir;
  const auto target = dir / "keep.txt";
  write_file_atomic(target, "original");
  EXPECT_THROW(write_atomically(target,
                                [](const fs::path& tmp) {
                                  std::ofstream(tmp) << "partial";
                                  throw IoError("simulated failure");
                                }),
               IoError);
  EXPECT_EQ(read_file(target), "original");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
}

TEST(AtomicWrite, TemporaryKeepsDoubleExtension) {
  const auto tmp = temporary_sibling("/x/case_0000.nii.gz");
  EXPECT_TRUE(has_suffix(tmp, ".nii.gz"));
  EXPECT_EQ(tmp.parent_path(), fs::path("/x"));
}

TEST(ReadFile, MissingFileNamesPath) {
  try {
    read_file("/nonexistent/thing.json");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/thing.json"), std::string::npos);
  }
}

TEST(JsonReader, UnknownKeysAreErrorsListingValidOnes) {
  Json j = {{"feature_size", 8}, {"featur_size", 4}};
  int feature_size = 16;
  JsonReader r(j, "UNETR options");
  r.get("feature_size", feature_size);
  EXPECT_EQ(feature_size, 8);
  try {
    r.finish();
    FAIL();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("featur_size"), std::string::npos);
    EXPECT_NE(msg.find("feature_size"), std::string::npos);
  }
}

TEST(JsonReader, WrongTypeNamesKey) {
  Json j = {{"depth", "three"}};
  int depth = 0;
  JsonReader r(j, "opts");
  EXPECT_THROW(r.get("depth", depth), ConfigError);
}

TEST(JsonReader, RequiredKeyMissingIsError) {
  Json j = Json::object();
  int depth = 0;
  JsonReader r(j, "opts");
  EXPECT_THROW(r.require("depth", depth), ConfigError);
}

}  // namespace
}  // namespace teachformer
