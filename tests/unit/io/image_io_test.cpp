#include "teachformer/io/image_io.hpp"

#include <zlib.h>

#include <cctype>
#include <cstring>
#include <functional>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "test_support.hpp"

namespace teachformer::io {
namespace {

using test::TempDir;

// A hand-made NIfTI-1 single file (.nii), independent of our writer, to pin down axis order and LPS handling.
struct NiftiSpec {
  std::vector<int16_t> dims{3, 4, 3, 2, 1, 1, 1, 1};
  int16_t datatype = 4;  // DT_INT16
  int16_t bitpix = 16;
  std::array<float, 3> pixdim{0.5f, 2.0f, 3.0f};
  std::array<float, 12> srow{0.5f, 0, 0, 10, 0, 2.0f, 0, -20, 0, 0, 3.0f, 30};  // RAS affine rows
};

std::string make_nifti(const NiftiSpec& spec, const std::string& payload) {
  std::string h(352, '\0');
  auto put = [&](size_t off, const void* src, size_t n) { std::memcpy(&h[off], src, n); };
  const int32_t sizeof_hdr = 348;
  put(0, &sizeof_hdr, 4);
  put(40, spec.dims.data(), 16);
  put(70, &spec.datatype, 2);
  put(72, &spec.bitpix, 2);
  float pixdim[8] = {1, spec.pixdim[0], spec.pixdim[1], spec.pixdim[2], 1, 1, 1, 1};
  put(76, pixdim, 32);
  const float vox_offset = 352;
  put(108, &vox_offset, 4);
  const float slope = 0, inter = 0;
  put(112, &slope, 4);
  put(116, &inter, 4);
  h[123] = 2;  // mm
  const int16_t qform = 0, sform = 1;
  put(252, &qform, 2);
  put(254, &sform, 2);
  put(280, spec.srow.data(), 48);
  put(344, "n+1\0", 4);
  return h + payload;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Volume sample_volume(int64_t c = 1) {
  Volume v;
  v.data = torch::arange(c * 5 * 4 * 3, torch::kFloat).reshape({c, 5, 4, 3}) * 0.5f - 7.0f;
  v.geometry.spacing = {0.7, 1.3, 3.0};
  v.geometry.origin = {-12.5, 40.25, 101.0};
  const double a = 0.3;
  v.geometry.direction = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  return v;
}

void expect_same_geometry(const Geometry& a, const Geometry& b) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.spacing[i], b.spacing[i], 1e-5);
    EXPECT_NEAR(a.origin[i], b.origin[i], 1e-4);
  }
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a.direction[i], b.direction[i], 1e-5);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, KeepsValuesAndGeometryWithRotatedAnisotropicGrid) {
  TempDir dir;
  const auto path = dir / ("img" + GetParam());
  const Volume v = sample_volume();
  write_image(path, v);
  const Volume r = read_image(path);
  ASSERT_EQ(r.data.sizes(), v.data.sizes());
  EXPECT_TRUE(torch::allclose(r.data, v.data));
  expect_same_geometry(r.geometry, v.geometry);
  const ImageInfo info = read_image_info(path);
  EXPECT_EQ(info.size, (Size3{3, 4, 5}));
  EXPECT_EQ(info.pixel_type, PixelType::Float32);
}

TEST_P(RoundTrip, Int16PixelTypeRoundsAndReadsBackAsFloat) {
  TempDir dir;
  const auto path = dir / ("ct" + GetParam());
  Volume v = sample_volume();
  v.data = v.data * 100.0f;
  write_image(path, v, PixelType::Int16);
  EXPECT_EQ(read_image_info(path).pixel_type, PixelType::Int16);
  const Volume r = read_image(path);
  EXPECT_TRUE(torch::allclose(r.data, v.data.round()));
}

TEST_P(RoundTrip, LabelsKeepUint8Values) {
  TempDir dir;
  const auto path = dir / ("lab" + GetParam());
  Volume v = sample_volume();
  v.data = (torch::arange(60).reshape({1, 5, 4, 3}) % 4).to(torch::kByte);
  write_label(path, v);
  const Volume r = read_label(path);
  EXPECT_EQ(r.data.scalar_type(), torch::kByte);
  EXPECT_TRUE(torch::equal(r.data, v.data));
  expect_same_geometry(r.geometry, v.geometry);
}

TEST_P(RoundTrip, MultiChannelWritesAndReadsFourDimensions) {
  TempDir dir;
  const auto path = dir / ("multi" + GetParam());
  const Volume v = sample_volume(3);
  write_image(path, v);
  const ImageInfo info = read_image_info(path);
  EXPECT_EQ(info.dimensions, 4);
  EXPECT_EQ(info.channels, 3);
  const Volume r = read_image(path);
  ASSERT_EQ(r.data.sizes(), v.data.sizes());
  EXPECT_TRUE(torch::allclose(r.data, v.data));
  expect_same_geometry(r.geometry, v.geometry);
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::Values(".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"),
                         [](const auto& info) {
                           std::string s = info.param.substr(1);
                           for (auto& ch : s) if (ch == '.') ch = '_';
                           return s;
                         });

TEST(ImageIo, ItkIndexIjkIsTensorElementKji) {
  TempDir dir;
  NiftiSpec spec;  // 4 x 3 x 2 voxels (i, j, k)
  std::string payload;
  for (int16_t k = 0; k < 2; ++k)
    for (int16_t j = 0; j < 3; ++j)
      for (int16_t i = 0; i < 4; ++i) {
        const int16_t value = static_cast<int16_t>(i + 10 * j + 100 * k);
        payload.append(reinterpret_cast<const char*>(&value), 2);
      }
  const auto path = dir / "axes.nii";
  write_bytes(path, make_nifti(spec, payload));
  const Volume v = read_image(path);
  ASSERT_EQ(v.data.sizes(), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(v.size(), (Size3{4, 3, 2}));
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 4; ++i) EXPECT_EQ(v.data[0][k][j][i].item<float>(), i + 10 * j + 100 * k);
}

TEST(ImageIo, NiftiRasAffineBecomesLpsGeometry) {
  TempDir dir;
  NiftiSpec spec;
  const auto path = dir / "ras.nii";
  write_bytes(path, make_nifti(spec, std::string(4 * 3 * 2 * 2, '\0')));
  const Volume v = read_image(path);
  // RAS origin (10, -20, 30) is LPS (-10, 20, 30); x and y axes flip.
  EXPECT_NEAR(v.geometry.origin[0], -10, 1e-5);
  EXPECT_NEAR(v.geometry.origin[1], 20, 1e-5);
  EXPECT_NEAR(v.geometry.origin[2], 30, 1e-5);
  EXPECT_NEAR(v.geometry.spacing[0], 0.5, 1e-6);
  EXPECT_NEAR(v.geometry.spacing[1], 2.0, 1e-6);
  EXPECT_NEAR(v.geometry.spacing[2], 3.0, 1e-6);
  EXPECT_NEAR(v.geometry.direction[0], -1, 1e-6);
  EXPECT_NEAR(v.geometry.direction[4], -1, 1e-6);
  EXPECT_NEAR(v.geometry.direction[8], 1, 1e-6);
  const Vec3 w = v.geometry.index_to_world({1, 1, 1});
  EXPECT_NEAR(w[0], -10.5, 1e-5);
  EXPECT_NEAR(w[1], 18, 1e-5);
  EXPECT_NEAR(w[2], 33, 1e-5);
}

TEST(ImageIo, FourDimensionalNiftiReadsAsChannels) {
  TempDir dir;
  NiftiSpec spec;
  spec.dims = {4, 4, 3, 2, 3, 1, 1, 1};
  spec.datatype = 16;  // float32
  spec.bitpix = 32;
  std::string payload;
  for (int c = 0; c < 3; ++c)
    for (int n = 0; n < 24; ++n) {
      const float value = float(c * 1000 + n);
      payload.append(reinterpret_cast<const char*>(&value), 4);
    }
  const auto path = dir / "msd.nii.gz";
  write_bytes(path, gzip(make_nifti(spec, payload)));
  const Volume v = read_image(path);
  ASSERT_EQ(v.data.sizes(), (std::vector<int64_t>{3, 2, 3, 4}));
  EXPECT_EQ(v.data[2][1][2][3].item<float>(), 2000 + 23);
  EXPECT_EQ(v.data[1][0][0][1].item<float>(), 1001);
}


TEST(ImageIoErrors, MissingFileNamesPath) {
  const std::string msg = error_of([] { read_image("/nonexistent/case_0000.nii.gz"); });
  EXPECT_NE(msg.find("/nonexistent/case_0000.nii.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST(ImageIoErrors, UnsupportedExtensionIsRejected) {
  TempDir dir;
  write_bytes(dir / "scan.png", "x");
  const std::string msg = error_of([&] { read_image(dir / "scan.png"); });
  EXPECT_NE(msg.find("unsupported image extension"), std::string::npos) << msg;
}

TEST(ImageIoErrors, TruncatedGzipIsAFormatError) {
  TempDir dir;
  const auto good = dir / "good.nii.gz";
  write_image(good, sample_volume());
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto bad = dir / "truncated.nii.gz";
  write_bytes(bad, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_image(bad), FormatError);
  const std::string msg = error_of([&] { read_image(bad); });
  EXPECT_NE(msg.find("truncated.nii.gz"), std::string::npos) << msg;
}

class Truncated : public ::testing::TestWithParam<std::string> {};

TEST_P(Truncated, FileCutInHalfIsAFormatError) {
  TempDir dir;
  const auto good = dir / ("good" + GetParam());
  Volume v = sample_volume();
  v.data = torch::rand({1, 40, 30, 20});
  write_image(good, v);
  const auto data_file = GetParam() == ".mhd" ? dir / "good.zraw" : good;
  const auto target = fs::exists(data_file) ? data_file : dir / "good.raw";
  fs::resize_file(target, fs::file_size(target) / 2);
  const std::string msg = error_of([&] { read_image(good); });
  EXPECT_NE(msg.find("good"), std::string::npos) << msg;
  EXPECT_THROW(read_image(good), FormatError);
}

INSTANTIATE_TEST_SUITE_P(Formats, Truncated, ::testing::Values(".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"),
                         [](const auto& info) {
                           std::string s = info.param.substr(1);
                           for (auto& ch : s) if (ch == '.') ch = '_';
                           return s;
                         });

TEST(ImageIoErrors, CorruptGzipIsAFormatError) {
  TempDir dir;
  const auto bad = dir / "corrupt.nii.gz";
  std::string junk = gzip(make_nifti(NiftiSpec{}, std::string(48, '\1')));
  for (size_t i = 20; i < junk.size(); i += 7) junk[i] = static_cast<char>(junk[i] ^ 0x5a);
  write_bytes(bad, junk);
  EXPECT_THROW(read_image(bad), FormatError);
}

TEST(ImageIoErrors, NotAnImageIsAFormatError) {
  TempDir dir;
  write_bytes(dir / "text.mha", "hello world, not an image\n");
  EXPECT_THROW(read_image(dir / "text.mha"), FormatError);
}

TEST(ImageIoErrors, UnsupportedPixelTypeIsAFormatError) {
  TempDir dir;
  NiftiSpec spec;
  spec.datatype = 32;  // complex64
  spec.bitpix = 64;
  write_bytes(dir / "complex.nii", make_nifti(spec, std::string(24 * 8, '\0')));
  const std::string msg = error_of([&] { read_image(dir / "complex.nii"); });
  EXPECT_NE(msg.find("complex.nii"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unsupported"), std::string::npos) << msg;
}

TEST(ImageIoErrors, AbsurdHeaderDimensionsAreRefusedBeforeAllocation) {
  TempDir dir;
  NiftiSpec spec;
  spec.dims = {3, 30000, 30000, 30000, 1, 1, 1, 1};
  write_bytes(dir / "huge.nii", make_nifti(spec, std::string(64, '\0')));
  const std::string msg = error_of([&] { read_image(dir / "huge.nii"); });
  EXPECT_NE(msg.find("huge.nii"), std::string::npos) << msg;
  EXPECT_NE(msg.find("corrupt header"), std::string::npos) << msg;
}

// Found by fuzzing: an sform with terms near the float limits made ITK's SVD of the direction run for ever.
TEST(ImageIoErrors, ImplausibleSformIsRefusedBeforeItk) {
  TempDir dir;
  NiftiSpec spec;
  spec.srow[3] = -2.1267648e38f;
  spec.srow[4] = 2.3509886e-38f;
  write_bytes(dir / "sform.nii", make_nifti(spec, std::string(48, '\0')));
  const std::string msg = error_of([&] { read_image(dir / "sform.nii"); });
  EXPECT_NE(msg.find("sform.nii"), std::string::npos) << msg;
  EXPECT_NE(msg.find("implausible"), std::string::npos) << msg;
}

TEST(ImageIoErrors, ShortUncompressedDataIsAFormatError) {
  TempDir dir;
  NiftiSpec spec;  // needs 48 bytes of int16 data
  write_bytes(dir / "short.nii", make_nifti(spec, std::string(10, '\0')));
  EXPECT_THROW(read_image(dir / "short.nii"), FormatError);
}

TEST(ImageIoErrors, FractionalLabelValuesAreRejected) {
  TempDir dir;
  Volume v = sample_volume();
  write_image(dir / "seg.nii.gz", v);
  const std::string msg = error_of([&] { read_label(dir / "seg.nii.gz"); });
  EXPECT_NE(msg.find("seg.nii.gz"), std::string::npos) << msg;
}

TEST(ImageIoErrors, FailedWriteLeavesExistingFileIntact) {
  TempDir dir;
  const auto path = dir / "keep.nii.gz";
  write_image(path, sample_volume());
  Volume bad;
  bad.data = torch::zeros({2, 3});
  EXPECT_THROW(write_image(path, bad), InvalidArgument);
  EXPECT_TRUE(torch::allclose(read_image(path).data, sample_volume().data));
}


// MetaImage and NRRD headers are checked before ITK parses them: each case below names the file and what is wrong.
struct BadHeader {
  const char* name;
  std::string bytes;
  const char* expected;  // a fragment of the one-line message
  bool header_only = true;  // false: the header is fine, reading the data fails
};

std::string meta(const std::string& lines) { return "ObjectType = Image\n" + lines + std::string(8, '\1'); }
std::string nrrd(const std::string& lines) { return "NRRD0004\n" + lines + "\n" + std::string(8, '\1'); }

class TextHeaderErrors : public ::testing::TestWithParam<BadHeader> {};

TEST_P(TextHeaderErrors, AreOneLineFormatErrorsNamingFileAndField) {
  TempDir dir;
  const auto path = dir / GetParam().name;
  write_bytes(path, GetParam().bytes);
  std::vector<std::function<void()>> reads{[&] { read_image(path); }};
  if (GetParam().header_only) reads.emplace_back([&] { read_image_info(path); });
  for (const auto& read : reads) {
    try {
      read();
      FAIL() << "no error for " << GetParam().name;
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(GetParam().expected), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    MetaImageAndNrrd, TextHeaderErrors,
    ::testing::Values(
        BadHeader{"dims.mha", meta("NDims = 3\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
                  "DimSize holds 2 value(s); expected 3"},
        BadHeader{"order.mha", meta("DimSize = 2 2 2\nNDims = 3\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
                  "DimSize comes before NDims"},
        BadHeader{"ndims.mha", meta("NDims = 40\nElementDataFile = LOCAL\n"), "NDims is '40'; expected an integer"},
        BadHeader{"zero.mha", meta("NDims = 2\nDimSize = 2 0\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
                  "expected positive integers"},
        BadHeader{"type.mha", meta("NDims = 1\nDimSize = 8\nElementType = MET_UCHAR_ARRAY\nElementDataFile = LOCAL\n"),
                  "ElementType is 'MET_UCHAR_ARRAY'"},
        BadHeader{"twice.mha", meta("NDims = 1\nNDims = 1\n"), "NDims appears twice"},
        BadHeader{"nan.mha",
                  meta("NDims = 1\nDimSize = 8\nElementSpacing = nan\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"),
                  "expected finite numbers"},
        BadHeader{"binary.mha", std::string("NDims = 1\n\x01\x02garbage\n", 20), "control character"},
        BadHeader{"noequals.mha", "just some text\n", "is not 'Key = Value'"},
        BadHeader{"list.mhd", meta("NDims = 1\nDimSize = 8\nElementType = MET_UCHAR\nElementDataFile = LIST\n"),
                  "names several files"},
        BadHeader{"escape.mhd", meta("NDims = 1\nDimSize = 8\nElementType = MET_UCHAR\nElementDataFile = /etc/passwd\n"),
                  "must name a file in the header's folder"},
        BadHeader{"nodata.mha", "ObjectType = Image\nNDims = 1\nDimSize = 8\nElementType = MET_UCHAR\n", "no ElementDataFile"},
        BadHeader{"magic.nrrd", "NRRD0009\ntype: float\n", "NRRD0001 to NRRD0005"},
        BadHeader{"field.nrrd", nrrd("type: float\ndimension: 1\nsizes: 2\nencoding: raw\nbogus: 1\n"),
                  "unknown NRRD field 'bogus'"},
        BadHeader{"sizes.nrrd", nrrd("type: float\ndimension: 3\nsizes: 2 2\nencoding: raw\n"),
                  "sizes holds 2 value(s); expected 3"},
        BadHeader{"early.nrrd", nrrd("type: float\nsizes: 2 2\ndimension: 2\nencoding: raw\n"),
                  "'sizes' comes before 'dimension'"},
        BadHeader{"dirs.nrrd",
                  nrrd("type: float\ndimension: 2\nspace: RAS\nsizes: 1 1\nspace directions: (1,0,0) (0,1)\n"
                       "encoding: raw\n"),
                  "expected (x,y,z) with 3 finite numbers"},
        BadHeader{"nospace.nrrd", nrrd("type: float\ndimension: 1\nsizes: 1\nspace origin: (0,0,0)\nencoding: raw\n"),
                  "comes before 'space'"},
        BadHeader{"encoding.nrrd", nrrd("type: float\ndimension: 1\nsizes: 1\nencoding: bzip2\n"),
                  "encoding 'bzip2' is not supported"},
        BadHeader{"block.nrrd", nrrd("type: block\ndimension: 1\nsizes: 1\nencoding: raw\n"),
                  "type 'block' is not supported"},
        BadHeader{"list.nrrd", "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\ndata file: LIST\na.raw\n",
                  "names several files"},
        BadHeader{"escape.nhdr", "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\ndata file: ../x.raw\n",
                  "must name a file in the header's folder"},
        BadHeader{"nofile.nhdr", "NRRD0004\ntype: uchar\ndimension: 1\nsizes: 2\nencoding: raw\n",
                  "a .nhdr needs one"},
        BadHeader{"truncated.nrrd", "NRRD0004\ntype: float\ndimension: 2\nsizes: 2 2\nencoding: raw\n",
                  "does not end with an empty line"},
        BadHeader{"short.nrrd", "NRRD0004\ntype: float\ndimension: 2\nsizes: 4 4\nendian: little\nencoding: raw\n\n1234",
                  "is truncated: header promises 64 bytes", false}),
    [](const ::testing::TestParamInfo<BadHeader>& info) {
      std::string n = info.param.name;
      for (auto& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(TextHeaders, HeadersAsOtherToolsWriteThemAreRead) {
  TempDir dir;
  // ITK's MetaImage writer, with a metadata-dictionary key MetaIO keeps as text.
  std::string data(8, '\0');
  for (int i = 0; i < 8; ++i) data[size_t(i)] = char(i);
  write_bytes(dir / "itk.mha",
              "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = -1.5 2 0.25\n"
              "CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\nElementSpacing = 0.8 0.8 3\n"
              "ITK_InputFilterName = NiftiImageIO\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
              "ElementDataFile = LOCAL\n" + data);
  const Volume m = read_image(dir / "itk.mha");
  EXPECT_EQ(m.data.numel(), 8);
  EXPECT_EQ(m.data.sum().item<double>(), 28.0);
  EXPECT_NEAR(m.geometry.spacing[2], 3.0, 1e-9);
  // NRRD with ASCII data, a comment and a key/value pair.
  write_bytes(dir / "ascii.nrrd",
              "NRRD0004\n# a comment\ntype: double\ndimension: 3\nsizes: 2 2 1\nspacings: 1 2 3\n"
              "Slicer:=key value\nencoding: ascii\n\n1.5 2\n-3 400\n");
  const Volume n = read_image(dir / "ascii.nrrd");
  EXPECT_EQ(n.data.numel(), 4);
  EXPECT_NEAR(n.data.sum().item<double>(), 400.5, 1e-9);
  // A detached NRRD header beside its raw data file.
  write_bytes(dir / "d.raw", data);
  write_bytes(dir / "d.nhdr", "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 2 2\n"
                              "space directions: (1,0,0) (0,1,0) (0,0,2)\nspace origin: (0,0,0)\n"
                              "encoding: raw\ndata file: d.raw\n");
  EXPECT_EQ(read_image(dir / "d.nhdr").data.sum().item<double>(), 28.0);
}

}  // namespace
}  // namespace teachformer::io
