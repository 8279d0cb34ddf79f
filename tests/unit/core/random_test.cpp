#include "teachformer/core/random.hpp"
#include "teachformer/core/error.hpp"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

namespace teachformer {
namespace {

TEST(Rng, SameKeysGiveSameStreamAndDifferentKeysDiffer) {
  Rng a({7, 3, 1}), b({7, 3, 1}), c({7, 3, 2});
  for (int i = 0; i < 10; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
  }
}

TEST(Rng, StateRoundTripContinuesTheStream) {
  Rng a(42);
  a.next_u64();
  const std::string st = a.state();
  const auto expected = a.next_u64();
  Rng b(0);
  b.set_state(st);
  EXPECT_EQ(b.next_u64(), expected);
}

TEST(Rng, DistributionsHaveExpectedMoments) {
  Rng r(1);
  double sum = 0, sum2 = 0, usum = 0;
  const int n = 20000;
  std::set<int64_t> seen;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    sum += x;
    sum2 += x * x;
    usum += r.uniform();
    seen.insert(r.below(5));
  }
  EXPECT_NEAR(sum / n, 0.0, 0.03);
  EXPECT_NEAR(sum2 / n, 1.0, 0.05);
  EXPECT_NEAR(usum / n, 0.5, 0.01);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_THROW(r.below(0), InvalidArgument);
}

}  // namespace
}  // namespace teachformer
