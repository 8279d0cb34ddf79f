// Low-precision inference of TeachFormer-S: names, calibration JSON, the int8 and bf16 paths against float32, the
// calibration contract, model folders with quantization.json, and doctor's description.
#include "teachformer/models/low_precision.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model_folder_fixture.hpp"
#include "models/detail/low_precision_conv.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/teachformer_s.hpp"
#include "test_support.hpp"

namespace teachformer::models {
namespace {

using ::testing::HasSubstr;

const TapRequest kNone{false, false, false, false};

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

TEST(LowPrecision, PrecisionNamesRoundTripAndUnknownOnesAreListed) {
  for (auto p : {Precision::kFloat32, Precision::kBFloat16, Precision::kInt8})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  EXPECT_EQ(parse_precision("float32"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("bfloat16"), Precision::kBFloat16);
  try {
    parse_precision("int4");
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("'int4'"));
    EXPECT_THAT(e.what(), HasSubstr("fp32, bf16, int8"));
  }
}

TEST(LowPrecision, CalibrationJsonRoundTripsAndRejectsBadRanges) {
  Int8Calibration c;
  c.input_absmax = {{"encoder.1.0.conv", 3.5f}, {"decoder.1.0.conv", 0.25f}};
  const Int8Calibration r = int8_calibration_from_json(to_json(c), "test");
  EXPECT_EQ(r.input_absmax, c.input_absmax);
  EXPECT_THROW(int8_calibration_from_json(nlohmann::json::object(), "q.json"), FormatError);
  try {
    int8_calibration_from_json({{"encoder.1.0.conv", {{"input_absmax", -1.0}}}}, "q.json fold_0");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("q.json fold_0"));
    EXPECT_THAT(e.what(), HasSubstr("encoder.1.0.conv"));
  }
  EXPECT_THROW(int8_calibration_from_json({{"x", {{"input_absmax", 1.0}, {"extra", 1}}}}, "q"), FormatError);
  // The smallest input, where recorded, round-trips; out of [-absmax, absmax] or not a number it is refused.
  c.input_min = {{"encoder.1.0.conv", -0.25f}};
  const Int8Calibration m = int8_calibration_from_json(to_json(c), "test");
  EXPECT_EQ(m.input_min, c.input_min);
  EXPECT_EQ(m.input_absmax, c.input_absmax);
  EXPECT_THROW(int8_calibration_from_json({{"x", {{"input_absmax", 1.0}, {"input_min", -2.0}}}}, "q"), FormatError);
  EXPECT_THROW(int8_calibration_from_json({{"x", {{"input_absmax", 1.0}, {"input_min", "low"}}}}, "q"), FormatError);
}

TEST(LowPrecision, AsymmetricActivationsQuantizeALeakyReluOutputTwiceAsFinelyBordersIncluded) {
  if (!low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  torch::manual_seed(3);
  // A leaky ReLU output: mostly positive, a small negative tail; a 3^3 conv with zero padding 1.
  const torch::Tensor x = torch::leaky_relu(torch::randn({1, 16, 12, 10, 8}) * 3.0, 0.01);
  const torch::Tensor w = torch::randn({16, 16, 3, 3, 3}) * 0.1;
  const torch::Tensor ref = torch::conv3d(x, w, {}, 1, 1);
  const float absmax = x.abs().max().item<float>(), min = x.min().item<float>();
  c10::InferenceMode guard;
  detail::LowPrecisionConv3d symmetric(w, {1, 1, 1}, {1, 1, 1}, Precision::kInt8, absmax);
  detail::LowPrecisionConv3d asymmetric(w, {1, 1, 1}, {1, 1, 1}, Precision::kInt8, absmax, min);
  const double e_sym = relative_error(symmetric.forward(x), ref);
  const torch::Tensor ya = asymmetric.forward(x);
  const double e_asym = relative_error(ya, ref);
  EXPECT_LT(e_asym, 0.75 * e_sym) << e_asym << " vs " << e_sym;
  // The padded border is zero, not the code 0 (which stands for the range's minimum): with a zero point near the
  // middle of the range, the border planes are as accurate as the interior.
  const torch::Tensor x2 = torch::randn({1, 16, 12, 10, 8}) * 3.0;
  const torch::Tensor ref2 = torch::conv3d(x2, w, {}, 1, 1);
  detail::LowPrecisionConv3d centred(w, {1, 1, 1}, {1, 1, 1}, Precision::kInt8, x2.abs().max().item<float>(),
                                     x2.min().item<float>());
  const torch::Tensor y2 = centred.forward(x2);
  const double e_all = relative_error(y2, ref2);
  for (int dim = 2; dim < 5; ++dim)
    for (int64_t at : {int64_t(0), y2.size(dim) - 1}) {
      const double e_border = relative_error(y2.select(dim, at), ref2.select(dim, at));
      EXPECT_LT(e_border, 2.0 * e_all + 1e-3) << "dim " << dim << " plane " << at;
    }
  EXPECT_THROW(detail::LowPrecisionConv3d(w, {1, 1, 1}, {1, 1, 1}, Precision::kInt8, 1.0f, -2.0f), InvalidArgument);
}

// A small student with random norm affines, calibrated on random inputs.
struct Calibrated {
  std::shared_ptr<TeachFormerSImpl> model;
  Int8Calibration calibration;
};
Calibrated calibrated_student(int64_t size) {
  torch::manual_seed(7);
  auto model = std::make_shared<TeachFormerSImpl>(TeachFormerSOptions(2, 3));
  model->eval();
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.value().dim() == 1) p.value().add_(torch::randn_like(p.value()) * 0.1);
  model->start_calibration();
  for (int i = 0; i < 3; ++i) model->forward(torch::randn({1, 2, size, size, size}), kNone);
  return {model, model->finish_calibration()};
}

// A random input and the model's float32 logits for it (the reference of every low-precision comparison).
struct Probe {
  torch::Tensor x, y32;
};
Probe float32_probe(const Calibrated& c) {
  c10::InferenceMode guard;
  Probe p{torch::randn({1, 2, 32, 32, 32}), {}};
  p.y32 = c.model->forward(p.x, kNone).logits;
  return p;
}

TEST(LowPrecision, CalibrationCoversTheUnitsAndDownsamplingsNotTheStemNorTheFirstDownsampling) {
  const Calibrated c = calibrated_student(32);
  // The small preset: the k2 s2 downsamplings but the first, encoder units at 1/4 and 1/8 (depths 0, 1, 1, 0) and
  // one decoder unit per decoder stage but the finest (fine_decoder_depth 0); not the stem, not down.0 (which reads
  // the stem's output).
  std::vector<std::string> names;
  for (const auto& [name, absmax] : c.calibration.input_absmax) {
    names.push_back(name);
    EXPECT_GT(absmax, 0.0f) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"decoder.1.0.conv", "decoder.2.0.conv", "down.1.conv", "down.2.conv",
                                             "encoder.1.0.conv", "encoder.2.0.conv"}));
  // Each layer's smallest input too (what asymmetric activations need).
  ASSERT_EQ(c.calibration.input_min.size(), names.size());
  for (const auto& [name, min] : c.calibration.input_min) {
    EXPECT_GE(min, -c.calibration.input_absmax.at(name)) << name;
    EXPECT_LE(min, c.calibration.input_absmax.at(name)) << name;
  }
  // The unit inputs that come out of a leaky ReLU (slope 0.01) are barely negative.
  EXPECT_GT(c.calibration.input_min.at("encoder.1.0.conv"), -0.05f * c.calibration.input_absmax.at("encoder.1.0.conv"));
}

TEST(LowPrecision, Int8AndBf16StayCloseToFloat32AndFp32ComesBackExactly) {
  if (!low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  Calibrated c = calibrated_student(32);
  const auto [x, y32] = float32_probe(c);
  c10::InferenceMode guard;
  c.model->set_precision(Precision::kInt8, &c.calibration);
  EXPECT_EQ(c.model->precision(), Precision::kInt8);
  const torch::Tensor y8 = c.model->forward(x, kNone).logits;
  // Not the float32 path (that would be exact), but close to it.
  EXPECT_GT(relative_error(y8, y32), 1e-6);
  EXPECT_LT(relative_error(y8, y32), 0.1);
  EXPECT_GT((y8.argmax(1) == y32.argmax(1)).to(torch::kDouble).mean().item<double>(), 0.9);
  if (low_precision_support().bf16_kernels()) {
    c.model->set_precision(Precision::kBFloat16);
    const torch::Tensor y16 = c.model->forward(x, kNone).logits;
    EXPECT_GT(relative_error(y16, y32), 1e-7);
    EXPECT_LT(relative_error(y16, y32), 0.05);
  } else {
    // Without AVX-512 oneDNN has no bf16 kernel: refused at once, naming why, and the model keeps its precision.
    try {
      c.model->set_precision(Precision::kBFloat16);
      ADD_FAILURE() << "bf16 accepted on a CPU without bf16 kernels";
    } catch (const InvalidArgument& e) {
      EXPECT_THAT(e.what(), HasSubstr("bf16 needs AVX-512"));
    }
    EXPECT_EQ(c.model->precision(), Precision::kInt8);
  }
  c.model->set_precision(Precision::kFloat32);
  EXPECT_TRUE(torch::equal(c.model->forward(x, kNone).logits, y32));
}

TEST(LowPrecision, ACalibrationWithoutMinimaRunsSymmetricInt8AndIsLessAccurate) {
  if (!low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  Calibrated c = calibrated_student(32);
  const auto [x, y32] = float32_probe(c);
  c10::InferenceMode guard;
  c.model->set_precision(Precision::kInt8, &c.calibration);
  const double e_asym = relative_error(c.model->forward(x, kNone).logits, y32);
  // As written before minima were recorded: every layer symmetric s8.
  Int8Calibration older = c.calibration;
  older.input_min.clear();
  c.model->set_precision(Precision::kInt8, &older);
  const double e_sym = relative_error(c.model->forward(x, kNone).logits, y32);
  EXPECT_LT(e_asym, e_sym);
  EXPECT_LT(e_sym, 0.1);
}

TEST(LowPrecision, GradModeAndOtherInputSizesKeepWorking) {
  if (!low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  Calibrated c = calibrated_student(32);
  torch::Tensor x = torch::randn({1, 2, 32, 32, 32});
  torch::Tensor y32;
  {
    c10::InferenceMode guard;
    y32 = c.model->forward(x, kNone).logits;
  }
  c.model->set_precision(Precision::kInt8, &c.calibration);
  // Training (grad mode) never runs the low-precision kernels.
  const torch::Tensor yg = c.model->forward(x, kNone).logits;
  EXPECT_LT(relative_error(yg.detach(), y32), 1e-4);
  // A new input shape builds its own primitives; a batch of two gives each sample its own result.
  c10::InferenceMode guard;
  const torch::Tensor x2 = torch::randn({2, 2, 48, 32, 16});
  const torch::Tensor y2 = c.model->forward(x2, kNone).logits;
  EXPECT_EQ(y2.sizes(), (std::vector<int64_t>{2, 3, 48, 32, 16}));
  EXPECT_LT(relative_error(y2[1], c.model->forward(x2.narrow(0, 1, 1), kNone).logits[0]), 1e-5);
}

TEST(LowPrecision, ACalibrationThatStillNamesTheFirstDownsamplingLoadsAndKeepsItFloat32) {
  if (!low_precision_support().onednn) GTEST_SKIP() << "this build has no oneDNN";
  Calibrated c = calibrated_student(32);
  c10::InferenceMode guard;
  const torch::Tensor x = torch::randn({1, 2, 32, 32, 32});
  c.model->set_precision(Precision::kInt8, &c.calibration);
  const torch::Tensor y = c.model->forward(x, kNone).logits;
  // As quantize wrote it while down.0 was int8: the extra entry is not used.
  Int8Calibration older = c.calibration;
  older.input_absmax["down.0.conv"] = 0.01f;  // would saturate nearly every input if it were used
  c.model->set_precision(Precision::kInt8, &older);
  EXPECT_TRUE(torch::equal(c.model->forward(x, kNone).logits, y));
}

TEST(LowPrecision, Int8NeedsACalibrationOfEveryLayer) {
  Calibrated c = calibrated_student(32);
  EXPECT_THROW(c.model->set_precision(Precision::kInt8, nullptr), InvalidArgument);
  Int8Calibration partial = c.calibration;
  partial.input_absmax.erase("encoder.2.0.conv");
  try {
    c.model->set_precision(Precision::kInt8, &partial);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("encoder.2.0.conv"));
  }
  // Calibration needs forwards.
  c.model->start_calibration();
  EXPECT_THROW(c.model->finish_calibration(), InvalidArgument);
}

TEST(LowPrecision, OnlyTheStudentHasALowPrecisionPath) {
  auto unetr = create_model("unetr", {{"in_channels", 1}, {"out_channels", 2}, {"img_size", {32, 32, 32}},
                                      {"feature_size", 8}, {"hidden_size", 48}, {"mlp_dim", 96}, {"num_heads", 4}});
  EXPECT_EQ(low_precision_model(*unetr), nullptr);
  auto student = create_model("teachformer_s", {{"preset", "tiny"}});
  EXPECT_NE(low_precision_model(*student), nullptr);
}

TEST(LowPrecision, ModelFolderWithQuantizationJsonLoadsInt8AndExplainsWhatIsMissing) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0});
  const ModelFolder plain = open_model_folder(dir.path());
  EXPECT_EQ(plain.preferred_precision(), Precision::kFloat32);
  try {
    plain.load(0, "best", Precision::kInt8);
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("teachformer quantize"));
    EXPECT_THAT(e.what(), HasSubstr(dir.path().string()));
  }
  // Calibrate the fold's model and write quantization.json as quantize does.
  auto model = plain.load(0, "best");
  auto* low = low_precision_model(*model);
  ASSERT_NE(low, nullptr);
  {
    c10::InferenceMode guard;
    low->start_calibration();
    model->forward(torch::randn({1, 1, 16, 16, 16}), kNone);
  }
  const Int8Calibration calibration = low->finish_calibration();
  nlohmann::json q = {{"format", "teachformer-quantization"},
                      {"precision", "int8"},
                      {"checkpoint", "best"},
                      {"folds", {{"fold_0", {{"layers", to_json(calibration)}, {"guard", nullptr}}}}}};
  write_json(dir.path() / "quantization.json", q);
  const ModelFolder quantized = open_model_folder(dir.path());
  EXPECT_EQ(quantized.preferred_precision(), Precision::kInt8);
  EXPECT_EQ(quantized.int8_calibration(0, "best").input_absmax, calibration.input_absmax);
  EXPECT_THROW(quantized.int8_calibration(0, "final"), InvalidArgument);
  EXPECT_THROW(quantized.int8_calibration(1, "best"), InvalidArgument);
  if (low_precision_support().onednn) {
    auto m8 = quantized.load(0, "best", Precision::kInt8);
    EXPECT_EQ(low_precision_model(*m8)->precision(), Precision::kInt8);
  }
  // A damaged quantization.json is a one-line FormatError naming it when the folder is opened.
  q["folds"]["fold_0"]["layers"] = {{"encoder.1.0.conv", {{"input_absmax", "big"}}}};
  write_json(dir.path() / "quantization.json", q);
  try {
    open_model_folder(dir.path());
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_THAT(e.what(), HasSubstr("quantization.json"));
  }
}

TEST(LowPrecision, DoctorLinesNameTheFlagsAndThePaths) {
  LowPrecisionSupport s;
  s.avx512_vnni = true;
  s.onednn = false;
  auto lines = describe_low_precision(s);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("AVX512-VNNI yes"));
  EXPECT_THAT(lines[0], HasSubstr("AVX512-BF16 no"));
  EXPECT_THAT(lines[1], HasSubstr("no oneDNN"));
  s.onednn = true;
  s.onednn_isa = "avx512_core_vnni";
  lines = describe_low_precision(s);
  EXPECT_THAT(lines[1], HasSubstr("int8 (teachformer quantize): AVX512-VNNI dot products"));
  EXPECT_THAT(lines[1], HasSubstr("bf16: no bf16 instructions"));
  EXPECT_TRUE(s.int8_fast());
  EXPECT_FALSE(s.bf16_fast());
  EXPECT_TRUE(s.bf16_kernels());
  s.onednn_isa = "avx2";
  EXPECT_FALSE(s.bf16_kernels());
  EXPECT_THAT(describe_low_precision(s)[1], HasSubstr("bf16: unavailable, oneDNN has no bf16 kernels on this CPU (it "
                                                      "dispatches to avx2; bf16 needs AVX-512)"));
}

}  // namespace
}  // namespace teachformer::models
