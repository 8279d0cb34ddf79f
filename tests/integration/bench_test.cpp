// `teachformer bench` end to end: each measurement in its own worker process, the JSON array scripts read, the
// report files, and bad arguments as usage errors. Small inputs only (speed belongs to the benchmark itself).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

using ::testing::HasSubstr;
using test::run_cli;

nlohmann::json json_array_in(const std::string& output) {
  const auto start = output.find("\n[");
  return nlohmann::json::parse(output.substr(output.rfind('[', 0) == 0 ? 0 : start + 1));
}

TEST(BenchCli, PrintsOneJsonObjectPerModelMeasuredInItsOwnProcess) {
  test::TempDir dir;
  // UNETR first: were the student measured in the same process, its peak RSS would include UNETR's ~100M
  // parameters.
  const auto r = run_cli("--threads 2 -q bench --models unetr,teachformer_s --input 2x32x32x32 --what forward "
                         "--repeats 2 --min-time 0 --format json -o '" + (dir / "report").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = json_array_in(r.output);
  ASSERT_EQ(rows.size(), 2u) << r.output;
  EXPECT_EQ(rows[0]["model"], "unetr");
  EXPECT_EQ(rows[1]["model"], "teachformer_s");
  for (const auto& row : rows) {
    for (const char* k : {"model", "params", "gflops", "forward_s", "peak_rss_mb", "max_rss_mb"})
      EXPECT_TRUE(row.contains(k)) << k << ": " << row.dump();
    EXPECT_EQ(row["input"], "1x2x32x32x32");
    EXPECT_EQ(row["forward_runs"].size(), 2u);
  }
  EXPECT_GT(rows[0]["params"].get<int64_t>(), 90'000'000);
  EXPECT_LT(rows[1]["params"].get<int64_t>(), 2'000'000);
  EXPECT_LT(rows[1]["peak_rss_mb"].get<double>() + 250.0, rows[0]["peak_rss_mb"].get<double>()) << r.output;
  for (const char* f : {"bench.md", "bench.csv", "bench.json"}) EXPECT_TRUE(fs::exists(dir / "report" / f)) << f;
  const auto full = read_json(dir / "report" / "bench.json");
  EXPECT_EQ(full["rows"], rows);
  EXPECT_GT(full["machine"]["matmul_gflops"].get<double>(), 0.0);
  EXPECT_THAT(read_file(dir / "report" / "bench.md"), HasSubstr("### Forward"));
}

// Two real ranks (processes joined by c10d over loopback) time the same number of steps; rank 0 alone reports.
TEST(BenchCli, DataParallelSectionTimesOneAndTwoRanks) {
  const auto r = run_cli("-q bench --models teachformer_s --what ddp --repeats 2 --min-time 0 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rows = json_array_in(r.output);
  ASSERT_EQ(rows.size(), 1u) << r.output;
  const auto& row = rows[0];
  for (const char* k : {"ddp_1rank_step_s", "ddp_2rank_step_s", "ddp_efficiency", "ddp_allreduce_mb"})
    ASSERT_TRUE(row.contains(k)) << k << ": " << row.dump();
  EXPECT_EQ(row["ddp_2rank_runs"].size(), 2u);
  EXPECT_EQ(row["ddp_backend"], "gloo");
  EXPECT_NEAR(row["ddp_efficiency"].get<double>(),
              row["ddp_1rank_step_s"].get<double>() / row["ddp_2rank_step_s"].get<double>(), 1e-9);
  // Every gradient crosses once per step: the parameters' float32 bytes.
  EXPECT_NEAR(row["ddp_allreduce_mb"].get<double>(), row["params"].get<double>() * 4 / (1024.0 * 1024.0), 0.01);
}

TEST(BenchCli, BadArgumentsAreUsageErrors) {
  auto r = run_cli("bench --what forward,speed");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--what 'forward,speed': unknown section 'speed'"));
  r = run_cli("bench --input 2x32");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--input '2x32': expected CxDxHxW or BxCxDxHxW"));
  r = run_cli("bench --models teachformer_s,unetx");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("did you mean 'unetr'"));
  r = run_cli("bench --format xml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_cli("bench --input 2x32x32x32 --input 3x32x32x32");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("same number of channels"));
}

TEST(BenchCli, AWorkerGivenBrokenJsonSaysSo) {
  const auto r = run_cli("bench --worker '{not json'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bench worker: the task is not JSON"));
}

}  // namespace
}  // namespace teachformer
