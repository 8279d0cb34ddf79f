#include "teachformer/pipeline/job_runner.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::pipeline {
namespace {

TEST(JobRunner, JobSpecsRoundTripThroughJson) {
  JobSpec s;
  s.kind = "distill";
  s.label = "student teachformer (seed 1)";
  s.job.dataset = "/data/pre";
  s.job.model = "teachformer_s";
  s.job.preset = "demo";
  s.job.fold = 2;
  s.job.output = "/exp/seed_1/models/student_teachformer";
  s.job.config = {{"distill", {{"temperature", 2.0}}}};
  s.job.channels = {"PET"};
  s.job.patch_size = {32, 32, 32};
  s.job.epochs = 36;
  s.job.seed = 1;
  s.job.precision = "bf16";
  distill::TeacherSpec t;
  t.dir = "/exp/seed_1/models/unetr";
  t.weight = 0.5;
  s.distill.teachers = {t};
  s.distill.strategy = "teachformer";
  s.distill.cache = true;
  s.distill.unlabelled = std::filesystem::path("/data/unlabelled");
  const JobSpec r = job_spec_from_json(to_json(s));
  EXPECT_EQ(to_json(r), to_json(s));
  EXPECT_EQ(r.job.epochs, 36);
  EXPECT_FALSE(r.job.steps_per_epoch.has_value());
  EXPECT_EQ(r.distill.teachers.at(0).weight, 0.5);
  EXPECT_EQ(*r.distill.unlabelled, "/data/unlabelled");
  auto bad = to_json(s);
  bad["kind"] = "predict";
  EXPECT_THROW(job_spec_from_json(bad), ConfigError);
}

TEST(JobRunner, MachineLoadIsNonNegative) { EXPECT_GE(machine_load(), 0.0); }

}  // namespace
}  // namespace teachformer::pipeline
