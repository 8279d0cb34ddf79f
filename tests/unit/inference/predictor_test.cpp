// Predictor on a model folder written at test time: one window equals the model's softmax, folds are averaged
// as probabilities, the channels of config.json are picked from the image, and a folder without folds is an error.
#include "teachformer/inference/predictor.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model_folder_fixture.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "test_support.hpp"

namespace teachformer::inference {
namespace {

torch::Tensor softmax_of(const models::ModelFolder& folder, int fold, const torch::Tensor& image) {
  auto model = folder.load(fold);
  torch::NoGradGuard no_grad;
  return model->forward(image.unsqueeze(0)).logits.softmax(1).squeeze(0);
}

TEST(Predictor, OneWindowGivesTheModelsProbabilities) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0});
  const Predictor predictor(dir.path(), {});
  EXPECT_EQ(predictor.folds(), (std::vector<int>{0}));
  torch::manual_seed(0);
  const torch::Tensor image = torch::randn({1, 16, 16, 16});
  const torch::Tensor probs = predictor.predict_preprocessed(image);
  ASSERT_EQ(probs.sizes().vec(), (std::vector<int64_t>{2, 16, 16, 16}));
  EXPECT_TRUE(torch::allclose(probs, softmax_of(predictor.folder(), 0, image), 1e-4, 1e-5));
}

TEST(Predictor, FoldsAreAveragedAsProbabilities) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0, 1});
  const Predictor both(dir.path(), {});
  EXPECT_EQ(both.folds(), (std::vector<int>{0, 1}));
  torch::manual_seed(1);
  const torch::Tensor image = torch::randn({1, 16, 16, 16});
  const torch::Tensor expected =
      (softmax_of(both.folder(), 0, image) + softmax_of(both.folder(), 1, image)) / 2.0;
  EXPECT_TRUE(torch::allclose(both.predict_preprocessed(image), expected, 1e-4, 1e-5));
  PredictOptions only_one;
  only_one.folds = {1};
  const Predictor one(dir.path(), only_one);
  EXPECT_TRUE(torch::allclose(one.predict_preprocessed(image), softmax_of(one.folder(), 1, image), 1e-4, 1e-5));
}

TEST(Predictor, LargerImagesAreCoveredByWindowsAndProbabilitiesSumToOne) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0});
  const Predictor predictor(dir.path(), {});
  const torch::Tensor probs = predictor.predict_preprocessed(torch::randn({1, 24, 20, 16}));
  ASSERT_EQ(probs.sizes().vec(), (std::vector<int64_t>{2, 24, 20, 16}));
  EXPECT_TRUE(torch::allclose(probs.sum(0), torch::ones({24, 20, 16}), 1e-4, 1e-5));
}

TEST(Predictor, AFolderWithoutCheckpointsIsAnError) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {});
  try {
    Predictor(dir.path(), {});
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("has no trained fold"), std::string::npos) << e.what();
  }
}

TEST(CasesForPrediction, AMissingFolderOrAFileIsAOneLineErrorNamingIt) {
  test::TempDir dir;
  auto message = [](const std::filesystem::path& input) {
    try {
      cases_for_prediction(input, {"CT"}, {});
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto missing = dir.path() / "nope";
  EXPECT_NE(message(missing).find("input folder '" + missing.string() + "' does not exist"), std::string::npos);
  const auto file = dir.path() / "case_0000.nii.gz";
  write_file_atomic(file, "not an image");
  const std::string m = message(file);
  EXPECT_NE(m.find("input '" + file.string() + "' is a file; expected a folder of cases"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

}  // namespace
}  // namespace teachformer::inference
