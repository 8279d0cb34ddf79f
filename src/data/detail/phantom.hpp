// Private pieces of the phantom generator: a seeded generator with hand-written distributions and the two
// anatomical scenes (src/data/detail/phantom.cpp); layouts are written by src/data/synth.cpp.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "teachformer/data/synth.hpp"

namespace teachformer::data::detail {

/// std::mt19937_64 (output fixed by the standard) with uniform/normal written out, so phantoms are identical
/// across standard libraries.
class SynthRng {
 public:
  explicit SynthRng(uint64_t seed) : gen_(seed) {}
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(gen_() >> 11) * (1.0 / 9007199254740992.0); }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller, no cached spare).
  double normal();
  /// Uniform integer in [0, n).
  int64_t below(int64_t n) { return int64_t(uniform() * double(n)); }
  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }

 private:
  std::mt19937_64 gen_;
};

/// SplitMix64-style mix of a seed and a stream index.
uint64_t mix_seed(uint64_t seed, uint64_t stream);

/// Case and patient ids of every case, in index order (deterministic in the seed).
struct CaseName {
  std::string id;
  std::string patient_id;
};
std::vector<CaseName> case_names(const SynthOptions& options);

/// The scenes.
Phantom make_petct(const SynthOptions& options, int index, const CaseName& name);
Phantom make_mri(const SynthOptions& options, int index, const CaseName& name);

}  // namespace teachformer::data::detail
