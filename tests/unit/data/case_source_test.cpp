#include "teachformer/data/case_source.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <map>
#include <thread>

#include "teachformer/core/error.hpp"

namespace teachformer::data {
namespace {

TrainingCase make(const std::string& id, int64_t n = 16) {
  TrainingCase c;
  c.id = id;
  c.image = torch::full({1, n, n, n}, double(id.size()));
  return c;
}

TEST(CaseSource, CachedCasesStayWithinTheirBudgetAndReloadWhatWasEvicted) {
  std::map<std::string, int> loads;
  std::mutex m;
  const int64_t one = case_bytes(make("c0"));
  auto src = cached_cases({"c0", "c1", "c2", "c3"},
                          [&](const std::string& id) {
                            std::lock_guard<std::mutex> lock(m);
                            ++loads[id];
                            return make(id);
                          },
                          2 * one);
  EXPECT_FALSE(src->in_memory());
  EXPECT_EQ(src->size(), 4u);
  EXPECT_EQ(src->id(2), "c2");
  EXPECT_EQ(src->resident_bytes(), 0);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(src->get(i)->id, src->id(i));
  EXPECT_LE(src->resident_bytes(), 2 * one);
  src->get(3);  // still cached
  EXPECT_EQ(loads["c3"], 1);
  src->get(0);  // evicted: read again
  EXPECT_EQ(loads["c0"], 2);
  EXPECT_THROW(src->get(9), InvalidArgument);
}

TEST(CaseSource, ConcurrentRequestsLoadACaseOnce) {
  std::atomic<int> loads{0};
  auto src = cached_cases({"a"},
                          [&](const std::string& id) {
                            ++loads;
                            std::this_thread::sleep_for(std::chrono::milliseconds(50));
                            return make(id);
                          },
                          int64_t(1) << 30);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { src->get(0); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(loads.load(), 1);
}

TEST(CaseSource, ALoadErrorIsRethrownAndTheCaseCanBeTriedAgain) {
  int calls = 0;
  auto src = cached_cases({"x"},
                          [&](const std::string& id) -> TrainingCase {
                            if (++calls == 1) TF_THROW(IoError, "cannot read '", id, "'");
                            return make(id);
                          },
                          int64_t(1) << 20);
  EXPECT_THROW(src->get(0), IoError);
  EXPECT_EQ(src->get(0)->id, "x");
}

TEST(CaseSource, InMemoryAndConcatenatedSources) {
  auto a = in_memory_cases({make("a"), make("bb")});
  auto b = in_memory_cases({make("ccc")});
  EXPECT_TRUE(a->in_memory());
  EXPECT_EQ(a->resident_bytes(), case_bytes(make("a")) * 2);
  auto both = concatenated_cases({a, b});
  ASSERT_EQ(both->size(), 3u);
  EXPECT_EQ(both->id(2), "ccc");
  EXPECT_EQ(both->get(1)->id, "bb");
  EXPECT_THROW(both->get(3), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::data
