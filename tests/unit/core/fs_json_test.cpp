#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "test_checks.hpp"
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

TEST(JsonFiles, NumberOverflowingADoubleIsAFormatErrorNamingTheFile) {
  test::TempDir dir;
  write_file_atomic(dir / "big.json", R"({"a": 1e400})");
  try {
    read_json(dir / "big.json");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("big.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(json_from_string_or_file(R"({"a": -1e400})"), ConfigError);
}

TEST(JsonFiles, PathTooLongIsAnIoError) {
  const std::string name(5000, 'x');
  const std::string msg = test::message_of<IoError>([&] { read_json(name); });
  EXPECT_NE(msg.find("cannot be accessed"), std::string::npos) << msg;
  EXPECT_THROW(json_from_string_or_file(name), IoError);
}

TEST(JsonReaderRanges, NumbersMustFitTheTargetType) {
  const Json j = Json::parse(R"({"big": 1e300, "frac": 2.5, "neg": -1, "huge_int": 3000000000, "whole": 4.0,
                                 "list": [1, 2, 1e20], "float_big": 1e300, "u64": 18446744073709551615})");
  int i = 0;
  EXPECT_THROW(JsonReader(j, "t").get("big", i), ConfigError);
  EXPECT_THROW(JsonReader(j, "t").get("frac", i), ConfigError);
  EXPECT_THROW(JsonReader(j, "t").get("huge_int", i), ConfigError);
  uint32_t u = 0;
  EXPECT_THROW(JsonReader(j, "t").get("neg", u), ConfigError);
  int64_t big = 0;
  EXPECT_THROW(JsonReader(j, "t").get("u64", big), ConfigError);
  uint64_t ubig = 0;
  JsonReader(j, "t").get("u64", ubig);
  EXPECT_EQ(ubig, 18446744073709551615ull);
  std::vector<int> list;
  EXPECT_THROW(JsonReader(j, "t").get("list", list), ConfigError);
  std::array<int64_t, 3> arr{};
  EXPECT_THROW(JsonReader(j, "t").get("list", arr), ConfigError);
  float f = 0;
  EXPECT_THROW(JsonReader(j, "t").get("float_big", f), ConfigError);
  JsonReader(j, "t").get("whole", i);
  EXPECT_EQ(i, 4);
  double d = 0;
  JsonReader(j, "t").get("big", d);
  EXPECT_EQ(d, 1e300);
  const std::string msg = test::message_of<ConfigError>([&] { JsonReader(j, "opts").get("big", i); });
  EXPECT_NE(msg.find("opts: key 'big' must be a whole number"), std::string::npos) << msg;
}

TEST(Errors, MessagesAreOneLineWhateverTheirPartsHold) {
  const Json j = Json::parse(R"({"a\nb": 1})");
  const std::string msg = test::message_of<ConfigError>([&] { JsonReader(j, "opts").finish(); });
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_NE(msg.find("a b"), std::string::npos) << msg;
  EXPECT_EQ(std::string(FormatError("first line\r\n   second\nthird").what()), "first line second third");
}

}  // namespace
}  // namespace teachformer
