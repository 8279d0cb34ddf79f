#include "teachformer/io/safetensors.hpp"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer::io {
namespace {

using test::TempDir;

TEST(SafeTensors, ReadsUnetrFixtureWithExpectedKeysAndShapes) {
  const SafeTensors st = read_safetensors(test::fixture("models/unetr_tiny.safetensors"));
  const Json meta = read_json(test::fixture("models/unetr_tiny.json"));
  EXPECT_EQ(st.tensors.size(), meta["state_dict_keys"].get<size_t>());
  int64_t params = 0;
  for (const auto& [name, t] : st.tensors) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
    params += t.numel();
  }
  EXPECT_EQ(params, meta["parameters"].get<int64_t>());
  // conv patch embedding: hidden 96, 2 channels, 16^3 kernel
  EXPECT_EQ(st.at("vit.patch_embedding.patch_embeddings.weight").sizes(),
            (std::vector<int64_t>{96, 2, 16, 16, 16}));
}

TEST(SafeTensors, ReadsSwinFixtureInt64RelativePositionIndex) {
  const SafeTensors st = read_safetensors(test::fixture("models/swin_unetr_tiny.safetensors"));
  bool found = false;
  for (const auto& [name, t] : st.tensors) {
    if (name.find("relative_position_index") == std::string::npos) continue;
    found = true;
    EXPECT_EQ(t.scalar_type(), torch::kInt64) << name;
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{343, 343})) << name;  // window 7^3
    EXPECT_EQ(t.min().item<int64_t>(), 0);
    EXPECT_EQ(t.max().item<int64_t>(), 13 * 13 * 13 - 1);
  }
  EXPECT_TRUE(found);
}

TEST(SafeTensors, FixtureValuesMatchReferenceStatistics) {
  const SafeTensors io = read_safetensors(test::fixture("models/hdenseformer_tiny_io.safetensors"));
  const Json meta = read_json(test::fixture("models/hdenseformer_tiny.json"));
  for (const std::string name : {"output", "output_ds1", "output_ds2", "output_ds3"}) {
    const auto& t = io.at(name);
    EXPECT_EQ(t.sizes().vec(), meta["outputs"][name].get<std::vector<int64_t>>()) << name;
    EXPECT_NEAR(t.abs().mean().item<double>(), meta["output_abs_mean"][name].get<double>(), 1e-5) << name;
    EXPECT_NEAR(t.std().item<double>(), meta["output_std"][name].get<double>(), 1e-4) << name;
  }
}

TEST(SafeTensors, RoundTripKeepsDtypesShapesValuesAndMetadata) {
  TempDir dir;
  std::map<std::string, torch::Tensor> tensors{
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kHalf)},
      {"i64", torch::arange(6, torch::kLong).reshape({2, 3})},
      {"u8", torch::randint(0, 255, {2, 2, 2}).to(torch::kByte)},
      {"scalar", torch::tensor(3.5)},
      {"empty", torch::zeros({0, 4})},
      {"view", torch::randn({4, 4}).t()},  // non-contiguous
  };
  write_safetensors(dir / "w.safetensors", tensors, {{"model", "unetr"}, {"json", "{\"a\": 1}"}});
  const SafeTensors r = read_safetensors(dir / "w.safetensors");
  ASSERT_EQ(r.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(r.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(r.at(name).sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(r.at(name), t)) << name;
  }
  EXPECT_EQ(r.metadata.at("model"), "unetr");
  EXPECT_EQ(r.metadata.at("json"), "{\"a\": 1}");
  const SafeTensors h = read_safetensors_header(dir / "w.safetensors");
  EXPECT_EQ(h.at("f32").sizes(), (std::vector<int64_t>{3, 4}));
}

// Writes a safetensors file with a hand-written header.
void write_raw(const fs::path& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

std::string read_error(const fs::path& path) {
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(SafeTensorsErrors, HeaderLengthBeyondFileIsRejected) {
  TempDir dir;
  std::ofstream(dir / "a.safetensors", std::ios::binary) << std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10);
  const auto msg = read_error(dir / "a.safetensors");
  EXPECT_NE(msg.find("a.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
}

TEST(SafeTensorsErrors, OffsetsOutsideDataAreRejected) {
  TempDir dir;
  write_raw(dir / "b.safetensors", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})",
            std::string(8, '\0'));
  const auto msg = read_error(dir / "b.safetensors");
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("outside the data section"), std::string::npos) << msg;
}

TEST(SafeTensorsErrors, SizeThatDisagreesWithShapeIsRejected) {
  TempDir dir;
  write_raw(dir / "c.safetensors", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})",
            std::string(16, '\0'));
  EXPECT_NE(read_error(dir / "c.safetensors").find("need 12"), std::string::npos);
}

TEST(SafeTensorsErrors, HugeShapeIsRejectedWithoutAllocating) {
  TempDir dir;
  write_raw(dir / "d.safetensors",
            R"({"w": {"dtype": "F32", "shape": [100000000, 100000000, 100000], "data_offsets": [0, 16]}})",
            std::string(16, '\0'));
  EXPECT_THROW(read_safetensors(dir / "d.safetensors"), FormatError);
}

TEST(SafeTensorsErrors, HugeDimensionBehindAZeroIsRejected) {
  // A zero dimension makes the element count 0, so the data-size check alone would let 2^63 through to torch.
  TempDir dir;
  write_raw(dir / "z.safetensors",
            R"({"w": {"dtype": "F32", "shape": [0, 9223372036854775807, 2], "data_offsets": [0, 0]}})", "");
  const auto msg = read_error(dir / "z.safetensors");
  EXPECT_NE(msg.find("more than 2^60 elements"), std::string::npos) << msg;
  write_raw(dir / "y.safetensors",
            R"({"w": {"dtype": "U8", "shape": [0, 1073741824, 1073741824, 4], "data_offsets": [0, 0]}})", "");
  EXPECT_NE(read_error(dir / "y.safetensors").find("more than 2^60 elements"), std::string::npos);
  EXPECT_THROW(read_safetensors_header(dir / "y.safetensors"), FormatError);
}

TEST(SafeTensorsErrors, NumberTooLargeForADoubleIsAFormatError) {
  TempDir dir;
  write_raw(dir / "n.safetensors", R"({"w": {"dtype": "F32", "shape": [1e400], "data_offsets": [0, 4]}})",
            std::string(4, '\0'));
  EXPECT_NE(read_error(dir / "n.safetensors").find("not JSON"), std::string::npos);
}

TEST(SafeTensorsErrors, NonJsonHeaderAndUnknownDtypeAreRejected) {
  TempDir dir;
  write_raw(dir / "e.safetensors", "not json at all", "");
  EXPECT_NE(read_error(dir / "e.safetensors").find("not JSON"), std::string::npos);
  write_raw(dir / "f.safetensors", R"({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}})",
            std::string(8, '\0'));
  EXPECT_NE(read_error(dir / "f.safetensors").find("unsupported dtype"), std::string::npos);
}

TEST(SafeTensorsErrors, TooShortFileAndMissingFileAreRejected) {
  TempDir dir;
  std::ofstream(dir / "g.safetensors", std::ios::binary) << "abc";
  EXPECT_THROW(read_safetensors(dir / "g.safetensors"), FormatError);
  EXPECT_THROW(read_safetensors(dir / "missing.safetensors"), IoError);
}

TEST(SafeTensorsErrors, TruncatedDataIsRejected) {
  TempDir dir;
  write_safetensors(dir / "h.safetensors", {{"w", torch::randn({100})}});
  const auto size = fs::file_size(dir / "h.safetensors");
  fs::resize_file(dir / "h.safetensors", size - 50);
  EXPECT_THROW(read_safetensors(dir / "h.safetensors"), FormatError);
}

TEST(SafeTensorsErrors, MissingTensorNameListsAvailable) {
  SafeTensors st;
  st.tensors["weight"] = torch::zeros({1});
  try {
    st.at("wieght");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("weight"), std::string::npos);
  }
}

}  // namespace
}  // namespace teachformer::io

namespace teachformer::io {
namespace {

TEST(SafeTensors, GzipNameCompressesAndRoundTrips) {
  test::TempDir dir;
  std::map<std::string, torch::Tensor> tensors{{"probs", torch::zeros({2, 32, 32, 32}).to(torch::kHalf)},
                                               {"idx", torch::arange(10)}};
  write_safetensors(dir / "cache.safetensors.gz", tensors, {{"k", "v"}});
  EXPECT_LT(fs::file_size(dir / "cache.safetensors.gz"), 32u * 32 * 32 * 2 / 10);
  const SafeTensors r = read_safetensors(dir / "cache.safetensors.gz");
  EXPECT_TRUE(torch::equal(r.at("probs"), tensors["probs"]));
  EXPECT_TRUE(torch::equal(r.at("idx"), tensors["idx"]));
  EXPECT_EQ(r.metadata.at("k"), "v");
}

TEST(SafeTensorsErrors, TruncatedGzipIsRejected) {
  test::TempDir dir;
  write_safetensors(dir / "c.safetensors.gz", {{"w", torch::randn({1000})}});
  fs::resize_file(dir / "c.safetensors.gz", fs::file_size(dir / "c.safetensors.gz") / 2);
  const auto msg = read_error(dir / "c.safetensors.gz");
  EXPECT_NE(msg.find("c.safetensors.gz"), std::string::npos) << msg;
  EXPECT_THROW(read_safetensors(dir / "c.safetensors.gz"), FormatError);
}

}  // namespace
}  // namespace teachformer::io
