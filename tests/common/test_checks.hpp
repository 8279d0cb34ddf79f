// Checks shared by the test suites: the message of an expected exception and tensor closeness.
#pragma once
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::test {

/// The message of the `E` that `f` throws (exceptions of other types propagate); a placeholder when `f` returns.
template <typename E = Error>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception of the expected type>";
}

/// Expects `actual` to have `expected`'s shape and |actual - expected| <= atol + rtol * |expected| everywhere,
/// naming `what` and the largest difference otherwise.
inline void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what,
                         double atol, double rtol) {
  ASSERT_EQ(actual.sizes().vec(), expected.sizes().vec()) << what;
  const torch::Tensor diff = (actual - expected).abs();
  const double worst = (diff - (atol + rtol * expected.abs())).max().item<double>();
  EXPECT_LE(worst, 0.0) << what << ": max |diff| " << diff.max().item<double>();
}

/// expect_close with one tolerance for both terms, as torch::allclose(actual, expected, tol, tol).
inline void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what,
                         double tol) {
  expect_close(actual, expected, what, tol, tol);
}

}  // namespace teachformer::test
