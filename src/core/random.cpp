#include "teachformer/core/random.hpp"

#include <cmath>
#include <sstream>

#include "teachformer/core/error.hpp"

namespace teachformer {
namespace {
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) : Rng({seed}) {}

Rng::Rng(std::initializer_list<uint64_t> keys) {
  uint64_t x = 0x243f6a8885a308d3ULL;
  for (uint64_t k : keys) {
    x ^= k + 0x9e3779b97f4a7c15ULL + (x << 6) + (x >> 2);
    splitmix(x);
  }
  for (auto& s : s_) s = splitmix(x);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

int64_t Rng::below(int64_t n) {
  TF_CHECK(n > 0, InvalidArgument, "Rng::below: n must be positive, got ", n);
  const uint64_t un = uint64_t(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t r;
  do r = next_u64();
  while (r >= limit);
  return int64_t(r % un);
}

bool Rng::bernoulli(double p) { return uniform() < p; }

double Rng::normal() {
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

std::string Rng::state() const {
  std::ostringstream os;
  os << s_[0] << ' ' << s_[1] << ' ' << s_[2] << ' ' << s_[3];
  return os.str();
}

void Rng::set_state(const std::string& state) {
  std::istringstream is(state);
  for (auto& s : s_) is >> s;
  TF_CHECK(!is.fail(), InvalidArgument, "Rng: malformed state '", state, "'");
}

}  // namespace teachformer
