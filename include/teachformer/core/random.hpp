// Reproducible random numbers: a small counter-seeded generator whose results do not depend on the standard
// library's distribution implementations, so runs and resumes are identical across platforms.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>

namespace teachformer {

/// SplitMix64-seeded xoshiro256** generator. Cheap to copy; state serialisable as a string.
class Rng {
 public:
  /// Seeds from one value.
  explicit Rng(uint64_t seed = 0);
  /// Seeds from several values mixed together (e.g. {seed, epoch, batch_index}): the basis of counter-based
  /// determinism, independent of thread scheduling.
  Rng(std::initializer_list<uint64_t> keys);
  /// Next 64 random bits.
  uint64_t next_u64();
  /// Uniform in [0, 1).
  double uniform();
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi);
  /// Uniform integer in [0, n) (n > 0), unbiased.
  int64_t below(int64_t n);
  /// True with probability p.
  bool bernoulli(double p);
  /// Standard normal (Box-Muller, no cached spare).
  double normal();
  /// A seed for another generator (e.g. torch's), derived from this stream.
  uint64_t derive_seed() { return next_u64(); }
  /// "s0 s1 s2 s3" and back.
  std::string state() const;
  void set_state(const std::string& state);

 private:
  uint64_t s_[4];
};

}  // namespace teachformer
