// Model folders: the folds found, checkpoints by fold and kind, loading the weights a fold holds, and errors
// that name the folder, the file and what is missing.
#include "teachformer/models/model_folder.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model_folder_fixture.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::models {
namespace {

using teachformer::test::message_of;

TEST(ModelFolder, ListsTheFoldsThatHoldACheckpoint) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {1, 0, -1});
  std::filesystem::create_directories(dir / "fold_3");  // no checkpoint: not a fold
  const ModelFolder m = open_model_folder(dir.path());
  EXPECT_EQ(m.folds, (std::vector<int>{-1, 0, 1}));
  EXPECT_EQ(m.model, "teachformer_s");
  EXPECT_EQ(m.channels, (std::vector<std::string>{"CT"}));
  EXPECT_EQ(m.patch_size, (std::vector<int64_t>{16, 16, 16}));
  EXPECT_EQ(m.plan.reference_channel, "CT");
  EXPECT_EQ(m.checkpoint(-1), dir / "fold_all" / "checkpoint_best.safetensors");
  EXPECT_EQ(fold_folder(-1), "fold_all");
  EXPECT_EQ(fold_folder(2), "fold_2");
}

TEST(ModelFolder, LoadsTheWeightsOfTheFoldAskedFor) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0, 1});
  const ModelFolder m = open_model_folder(dir.path());
  torch::manual_seed(101);
  const auto expected = create_model("teachformer_s", test::tiny_student_options());
  const auto loaded = m.load(1);
  EXPECT_FALSE(loaded->is_training());
  const auto want = expected->named_parameters();
  for (const auto& p : loaded->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();
}

TEST(ModelFolder, AMissingCheckpointListsTheFoldsThatHaveOne) {
  test::TempDir dir;
  test::write_tiny_model_folder(dir.path(), {0, -1});
  const ModelFolder m = open_model_folder(dir.path());
  EXPECT_EQ(message_of([&] { m.checkpoint(2); }),
            "model folder '" + dir.path().string() +
                "' has no checkpoint_best.safetensors for fold 2; folds with checkpoints: [fold_all, fold_0]");
  EXPECT_THROW(m.checkpoint(0, "final"), IoError);
  EXPECT_THROW(m.checkpoint(0, "latest"), InvalidArgument);
}

TEST(ModelFolder, ErrorsNameTheFolderAndTheMissingPiece) {
  test::TempDir dir;
  EXPECT_EQ(message_of([&] { open_model_folder(dir / "nope"); }),
            "model folder '" + (dir / "nope").string() + "' does not exist");
  test::write_tiny_model_folder(dir / "m", {0});
  Json config = read_json(dir / "m" / "config.json");
  config.erase("patch_size");
  write_json(dir / "m" / "config.json", config);
  EXPECT_EQ(message_of([&] { open_model_folder(dir / "m"); }),
            "'" + (dir / "m" / "config.json").string() + "' has no 'patch_size'");
  std::filesystem::remove(dir / "m" / "config.json");
  EXPECT_THROW(open_model_folder(dir / "m"), IoError);
}

}  // namespace
}  // namespace teachformer::models
