#include "pipeline/detail/experiment_table.hpp"

#include <gtest/gtest.h>

#include <string>

namespace teachformer::pipeline::detail {
namespace {

ModelSeedResult model(const std::string& name, const std::string& role, std::map<std::string, double> dice,
                      const std::string& note = "") {
  ModelSeedResult m;
  m.name = name;
  m.role = role;
  m.note = note;
  m.case_dice = std::move(dice);
  m.stage = {{"val_dice", 0.9}, {"parameters", 10}};
  return m;
}

// Three seeds: a teacher dropped on seeds 3 and 5 and kept on seed 4, a student whose teacher weights differ per seed,
// and the lone student it is compared with.
TableInput three_seeds() {
  TableInput in;
  in.protocol = "generic";
  in.seeds = {3, 4, 5};
  const std::string dropped = "not better than student_alone on validation: dropped";
  const std::vector<std::string> weights = {"teachers: a x2.00", "teachers: a x1.50+b x0.50", "teachers: a x2.00"};
  for (size_t i = 0; i < 3; ++i) {
    SeedTable t;
    t.seed = in.seeds[i];
    const double s = 0.01 * double(i);
    t.models.push_back(model("b", "teacher", {{"c1", 0.5}, {"c2", 0.6}}, i == 1 ? "" : dropped));
    t.models.push_back(model("student:student_alone", "student", {{"c1", 0.80 + s}, {"c2", 0.70 + s}}));
    t.models.push_back(model("student:teachformer", "student", {{"c1", 0.85 + s}, {"c2", 0.74 + s}}, weights[i]));
    in.seeds_tables.push_back(t);
  }
  return in;
}

TEST(ExperimentTable, NotesNameTheSeedsTheyHoldFor) {
  const auto out = build_table(three_seeds());
  ASSERT_EQ(out.rows.size(), 3u);
  EXPECT_EQ(out.rows[0].note, "not better than student_alone on validation: dropped (seeds 3, 5)");
  EXPECT_EQ(out.rows[1].note, "");
  EXPECT_EQ(out.rows[2].note, "teachers: a x2.00 (seeds 3, 5); teachers: a x1.50+b x0.50 (seed 4)");
  EXPECT_NE(out.markdown.find("labels (not better than student_alone on validation: dropped (seeds 3, 5))"),
            std::string::npos);
  // Scripts get each seed's own note.
  EXPECT_EQ(out.rows[0].per_seed[1].count("note"), 0u);
  EXPECT_EQ(out.rows[2].per_seed[1].at("note"), "teachers: a x1.50+b x0.50");
}

TEST(ExperimentTable, ANoteOfEverySeedNamesNoSeed) {
  auto in = three_seeds();
  for (auto& t : in.seeds_tables) t.models[0].note = "kept";
  EXPECT_EQ(build_table(in).rows[0].note, "kept");
}

TEST(ExperimentTable, MeanOverSeedsAndPairedDifferencePooledOverSeeds) {
  const auto out = build_table(three_seeds());
  const auto& alone = out.rows[1];
  EXPECT_EQ(alone.seeds, (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_NEAR(alone.dice, 0.76, 1e-12);     // seeds 0.75, 0.76, 0.77
  EXPECT_NEAR(alone.dice_sd, 0.01, 1e-12);  // sample sd
  ASSERT_TRUE(out.rows[2].vs_student_alone.has_value());
  const auto& c = *out.rows[2].vs_student_alone;
  EXPECT_EQ(c.n, 6);                        // 2 cases x 3 seeds
  EXPECT_NEAR(c.mean_difference, 0.045, 1e-12);
  EXPECT_FALSE(out.rows[1].vs_student_alone.has_value());
  EXPECT_FALSE(out.rows[0].vs_student_alone.has_value());
}

TEST(ExperimentTable, SeedsAreListedInTheHeadingAndEveryCsvLine) {
  const auto in = three_seeds();
  EXPECT_NE(table_heading(in, 61).find("Seeds: 3,4,5 (the same data for every seed)"), std::string::npos);
  const auto csv = build_table(in).csv;
  EXPECT_NE(csv.find("student:teachformer,student,\"\",3 4 5,"), std::string::npos) << csv;
}

}  // namespace
}  // namespace teachformer::pipeline::detail
