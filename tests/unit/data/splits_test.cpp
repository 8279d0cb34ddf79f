#include "teachformer/data/splits.hpp"

#include <set>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

TEST(Splits, EveryCaseValidatedExactlyOnceAndPatientsNeverLeak) {
  std::vector<std::string> cases, patients;
  for (int p = 0; p < 9; ++p)
    for (int s = 0; s < 1 + p % 3; ++s) {
      cases.push_back("P" + std::to_string(p) + "_S" + std::to_string(s));
      patients.push_back("P" + std::to_string(p));
    }
  const auto folds = make_grouped_folds(cases, patients, 5, 1);
  ASSERT_EQ(folds.size(), 5u);
  std::multiset<std::string> validated;
  for (const auto& f : folds) {
    validated.insert(f.val.begin(), f.val.end());
    EXPECT_EQ(f.train.size() + f.val.size(), cases.size());
    EXPECT_NO_THROW(validate_fold(f, cases, patients));
  }
  EXPECT_EQ(validated.size(), cases.size());
  for (const auto& c : cases) EXPECT_EQ(validated.count(c), 1u) << c;
}

TEST(Splits, DeterministicForSeed) {
  std::vector<std::string> cases{"a", "b", "c", "d", "e", "f"};
  EXPECT_EQ(make_grouped_folds(cases, {}, 3, 5)[0].val, make_grouped_folds(cases, {}, 3, 5)[0].val);
}

TEST(Splits, TooFewPatientsIsAClearError) {
  try {
    make_grouped_folds({"a", "b", "c"}, {"p", "p", "q"}, 5);
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("2 patients"), std::string::npos) << e.what();
  }
}

TEST(Splits, FileRoundTripInNnunetFormat) {
  test::TempDir dir;
  const auto folds = make_grouped_folds({"a", "b", "c", "d"}, {}, 2);
  write_splits(dir / "splits_final.json", folds);
  const auto back = read_splits(dir / "splits_final.json");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].train, folds[1].train);
  EXPECT_EQ(back[1].val, folds[1].val);
}

TEST(Splits, LeakageAndUnknownIdsAreDetected) {
  Fold f{{"a", "b"}, {"c"}};
  EXPECT_THROW(validate_fold(f, {"a", "b"}), DatasetError);
  EXPECT_THROW(validate_fold(f, {"a", "b", "c"}, {"p1", "p2", "p2"}), DatasetError);
  EXPECT_NO_THROW(validate_fold(f, {"a", "b", "c"}, {"p1", "p2", "p3"}));
}

}  // namespace
}  // namespace teachformer::data
