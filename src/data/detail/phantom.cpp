#include "data/detail/phantom.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "teachformer/core/error.hpp"
#include "teachformer/transforms/lesions.hpp"

namespace teachformer::data::detail {

double SynthRng::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<CaseName> case_names(const SynthOptions& options) {
  std::vector<CaseName> names;
  if (options.kind == PhantomKind::PetCt) {
    static const char* centres[] = {"CHGJ", "CHMR", "CHUM", "CHUS", "CHUP"};
    for (int i = 0; i < options.cases; ++i) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%s%03d", centres[i % 5], i / 5 + 1);
      names.push_back({buf, buf});
    }
    return names;
  }
  // PI-CAI-like ids: patients 10000.., studies 1000000..; about a quarter of the studies repeat the previous
  // patient (follow-up scans), so grouped splits matter.
  SynthRng rng(mix_seed(options.seed, 0xC0FFEE));
  int patient = 10000 - 1;
  for (int i = 0; i < options.cases; ++i) {
    if (i == 0 || !rng.bernoulli(0.25)) ++patient;
    const std::string p = std::to_string(patient);
    names.push_back({p + "_" + std::to_string(1000000 + i), p});
  }
  return names;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A random low-order perturbation of an ellipsoid's surface: radius factor 1 + sum amplitude * cos(2 pi f k.dir + phase).
struct Bump {
  Vec3 k{0, 0, 1};
  double amplitude = 0.0;
  double frequency = 1.0;
  double phase = 0.0;
};

struct Shape {
  enum Kind { Ellipsoid, CylinderZ } kind = Ellipsoid;
  Vec3 centre{0, 0, 0};
  Vec3 radii{1, 1, 1};
  double angle_z = 0.0;        // rotation of the shape about z (radians)
  std::vector<Bump> bumps;
  std::vector<double> values;  // per channel; NaN = leaves the channel unchanged
  std::string group;           // structure mask name ("" = none)
  int label = 0;               // label value drawn where inside (0 = none)

  double reach() const {
    double bump = 0.0;
    for (const auto& b : bumps) bump += std::abs(b.amplitude);
    const double r = std::max({radii[0], radii[1], kind == CylinderZ ? 0.0 : radii[2]});
    return r * (1.0 + bump);
  }

  // Approximate signed distance in mm (negative inside).
  double distance(const Vec3& w) const {
    double ux = w[0] - centre[0], uy = w[1] - centre[1];
    const double uz = w[2] - centre[2];
    if (angle_z != 0.0) {
      const double c = std::cos(angle_z), s = std::sin(angle_z);
      const double rx = c * ux + s * uy, ry = -s * ux + c * uy;
      ux = rx;
      uy = ry;
    }
    if (kind == CylinderZ) {
      const double r = std::sqrt((ux / radii[0]) * (ux / radii[0]) + (uy / radii[1]) * (uy / radii[1]));
      return (r - 1.0) * std::min(radii[0], radii[1]);
    }
    const double ex = ux / radii[0], ey = uy / radii[1], ez = uz / radii[2];
    const double r = std::sqrt(ex * ex + ey * ey + ez * ez);
    double surface = 1.0;
    if (!bumps.empty()) {
      const double len = std::sqrt(ux * ux + uy * uy + uz * uz);
      const Vec3 dir = len > 1e-9 ? Vec3{ux / len, uy / len, uz / len} : Vec3{0, 0, 1};
      for (const auto& b : bumps)
        surface += b.amplitude * std::cos(2.0 * M_PI * b.frequency * (b.k[0] * dir[0] + b.k[1] * dir[1] + b.k[2] * dir[2]) + b.phase);
    }
    return (r - surface) * std::min({radii[0], radii[1], radii[2]});
  }
};

std::vector<Bump> random_bumps(SynthRng& rng, int n, double max_amplitude) {
  std::vector<Bump> bumps;
  for (int i = 0; i < n; ++i) {
    Bump b;
    Vec3 k{rng.normal(), rng.normal(), rng.normal()};
    const double len = std::max(1e-9, std::sqrt(k[0] * k[0] + k[1] * k[1] + k[2] * k[2]));
    b.k = {k[0] / len, k[1] / len, k[2] / len};
    b.amplitude = rng.uniform(0.3, 1.0) * max_amplitude;
    b.frequency = rng.uniform(0.5, 1.5);
    b.phase = rng.uniform(0.0, 2.0 * M_PI);
    bumps.push_back(b);
  }
  return bumps;
}

Grid make_grid(const Size3& size, const Vec3& spacing, const Vec3& centre, double angle_z = 0.0) {
  Grid g;
  g.size = size;
  g.geometry.spacing = spacing;
  const double c = std::cos(angle_z), s = std::sin(angle_z);
  g.geometry.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  const Vec3 half{0.5 * double(size[0] - 1) * spacing[0], 0.5 * double(size[1] - 1) * spacing[1],
                  0.5 * double(size[2] - 1) * spacing[2]};
  const Vec3 d = multiply(g.geometry.direction, half);
  for (int a = 0; a < 3; ++a) g.geometry.origin[a] = centre[a] - d[a];
  return g;
}

// Evaluates fn(world, flat index) for every voxel of `grid`, parallel over slices.
template <typename Fn>
void for_each_voxel(const Grid& grid, Fn&& fn) {
  const int64_t nx = grid.size[0], ny = grid.size[1], nz = grid.size[2];
  at::parallel_for(0, nz, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t j = 0; j < ny; ++j)
        for (int64_t i = 0; i < nx; ++i)
          fn(grid.geometry.index_to_world({double(i), double(j), double(k)}), (k * ny + j) * nx + i);
  });
}

// Soft rendering (partial volume): each shape blends its value in with occupancy 1 / (1 + exp(d / edge)).
torch::Tensor render(const std::vector<Shape>& shapes, double background, size_t channel, const Grid& grid) {
  auto out = torch::empty({1, grid.size[2], grid.size[1], grid.size[0]}, torch::kFloat);
  float* dst = out.data_ptr<float>();
  const Vec3& sp = grid.geometry.spacing;
  const double edge = 0.25 * (sp[0] + sp[1] + sp[2]) / 3.0 + 0.15;
  for_each_voxel(grid, [&](const Vec3& w, int64_t idx) {
    double v = background;
    for (const auto& s : shapes) {
      const double target = s.values[channel];
      if (std::isnan(target)) continue;
      if (s.kind == Shape::Ellipsoid) {
        const double dx = w[0] - s.centre[0], dy = w[1] - s.centre[1], dz = w[2] - s.centre[2];
        const double lim = s.reach() + 8.0 * edge;
        if (dx * dx + dy * dy + dz * dz > lim * lim) continue;
      }
      const double d = s.distance(w);
      if (d > 8.0 * edge) continue;
      const double occ = d < -8.0 * edge ? 1.0 : 1.0 / (1.0 + std::exp(d / edge));
      v += occ * (target - v);
    }
    dst[idx] = float(v);
  });
  return out;
}

// Hard masks on a grid: the label (last shape wins) and the structure groups.
void render_masks(const std::vector<Shape>& shapes, const Grid& grid, torch::Tensor& label,
                  std::map<std::string, torch::Tensor>& groups, const std::vector<std::string>& group_names) {
  label = torch::zeros({1, grid.size[2], grid.size[1], grid.size[0]}, torch::kUInt8);
  uint8_t* lab = label.data_ptr<uint8_t>();
  std::vector<bool*> gptr;
  for (const auto& name : group_names) {
    groups[name] = torch::zeros({grid.size[2], grid.size[1], grid.size[0]}, torch::kBool);
    gptr.push_back(groups[name].data_ptr<bool>());
  }
  for_each_voxel(grid, [&](const Vec3& w, int64_t idx) {
    for (const auto& s : shapes) {
      if (s.label == 0 && s.group.empty()) continue;
      if (s.kind == Shape::Ellipsoid) {
        const double dx = w[0] - s.centre[0], dy = w[1] - s.centre[1], dz = w[2] - s.centre[2];
        if (dx * dx + dy * dy + dz * dz > s.reach() * s.reach()) continue;
      }
      if (s.distance(w) >= 0.0) continue;
      if (s.label > 0) lab[idx] = uint8_t(s.label);
      for (size_t g = 0; g < group_names.size(); ++g)
        if (s.group == group_names[g]) gptr[g][idx] = true;
    }
  });
}

void add_noise(torch::Tensor& t, SynthRng& rng, double sigma_base, double sigma_sqrt, double lo, double hi) {
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = p[i];
    const double sigma = sigma_base + sigma_sqrt * std::sqrt(std::max(0.0, v));
    p[i] = float(std::clamp(v + sigma * rng.normal(), lo, hi));
  }
}

// Separable Gaussian blur of [1, Z, Y, X] with sigma in voxels per axis (x, y, z); edges replicate.
torch::Tensor blur(const torch::Tensor& in, const Vec3& sigma) {
  auto cur = in.contiguous().clone();
  const int64_t nz = cur.size(1), ny = cur.size(2), nx = cur.size(3);
  for (int a = 0; a < 3; ++a) {
    if (sigma[a] <= 0) continue;
    const int radius = int(std::ceil(3.0 * sigma[a]));
    std::vector<double> k(size_t(2 * radius + 1));
    double sum = 0;
    for (int i = -radius; i <= radius; ++i) sum += k[size_t(i + radius)] = std::exp(-0.5 * i * i / (sigma[a] * sigma[a]));
    for (auto& v : k) v /= sum;
    auto next = torch::empty_like(cur);
    const float* s = cur.data_ptr<float>();
    float* d = next.data_ptr<float>();
    const int64_t n = a == 0 ? nx : a == 1 ? ny : nz;
    const int64_t stride = a == 0 ? 1 : a == 1 ? nx : nx * ny;
    for (int64_t z = 0; z < nz; ++z)
      for (int64_t y = 0; y < ny; ++y)
        for (int64_t x = 0; x < nx; ++x) {
          const int64_t pos = a == 0 ? x : a == 1 ? y : z;
          const int64_t idx = (z * ny + y) * nx + x;
          double acc = 0;
          for (int i = -radius; i <= radius; ++i) {
            const int64_t q = std::clamp<int64_t>(pos + i, 0, n - 1);
            acc += k[size_t(i + radius)] * s[idx + (q - pos) * stride];
          }
          d[idx] = float(acc);
        }
    cur = next;
  }
  return cur;
}

std::pair<Vec3, Vec3> extent(const Grid& g) {
  Vec3 lo, hi;
  for (int a = 0; a < 3; ++a) {
    // Axis-aligned grids only (the reference grids built here have identity direction).
    lo[a] = g.geometry.origin[a] - 0.5 * g.geometry.spacing[a];
    hi[a] = g.geometry.origin[a] + (double(g.size[a]) - 0.5) * g.geometry.spacing[a];
  }
  return {lo, hi};
}

Shape ellipsoid(const Vec3& centre, const Vec3& radii, std::vector<double> values, std::string group = {}, int label = 0) {
  Shape s;
  s.kind = Shape::Ellipsoid;
  s.centre = centre;
  s.radii = radii;
  s.values = std::move(values);
  s.group = std::move(group);
  s.label = label;
  return s;
}

Shape cylinder(const Vec3& centre, double rx, double ry, std::vector<double> values) {
  Shape s;
  s.kind = Shape::CylinderZ;
  s.centre = centre;
  s.radii = {rx, ry, 1.0};
  s.values = std::move(values);
  return s;
}

double dist(const Vec3& a, const Vec3& b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

}  // namespace

// Long on purpose: one sequential recipe (grids, anatomy, lesions, uptake, noise, bbox), each step using the
// geometry of the ones before it.
Phantom make_petct(const SynthOptions& options, int index, const CaseName& name) {
  SynthRng rng(mix_seed(options.seed, uint64_t(index)));
  const bool hard = options.difficulty == PhantomDifficulty::Hard;
  const Size3 n = options.resolved_size();
  const Vec3 sp{1.0, 1.0, 3.0};
  const Vec3 fov{double(n[0]) * sp[0], double(n[1]) * sp[1], double(n[2]) * sp[2]};
  const double s = std::min(fov[0], fov[1]) / 96.0;
  // Scanner coordinates vary widely between centres (z from about -1200 to +1650 mm in HECKTOR).
  const Vec3 c0{rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-1100, 1500)};
  const Grid ct = make_grid(n, sp, c0);
  auto at = [&](double x, double y, double z) { return Vec3{c0[0] + x, c0[1] + y, c0[2] + z}; };

  // Channel values: {CT (HU), PET (SUV)}.
  std::vector<Shape> shapes;
  const double bx = 40 * s * rng.uniform(0.95, 1.05), by = 34 * s * rng.uniform(0.95, 1.05);
  shapes.push_back(cylinder(at(rng.uniform(-2, 2), rng.uniform(-2, 2), 0), bx, by, {40.0, rng.uniform(0.8, 1.2)}));
  shapes.push_back(cylinder(at(0, -8 * s, 0), 6 * s, 6 * s, {-950.0, 0.2}));
  shapes.push_back(cylinder(at(0, 24 * s, 0), 7 * s, 7 * s, {700.0, 1.6}));
  // PET-hot structures without a CT mass: the brain at the top of the field of view and two bilateral glands.
  const double brain_bottom = 0.5 * fov[2] + rng.uniform(0, 10) - 28.0;  // relative to the CT centre
  shapes.push_back(ellipsoid(at(0, 4 * s, brain_bottom + 28.0), {34 * s, 30 * s, 28},
                             {32.0, 7.0 * rng.uniform(0.85, 1.15)}, "pet_only"));

  // The bbox (inside the CT with a 2 mm margin, near the middle of the neck), then the tumour inside it.
  const double half = 0.5 * options.bbox_mm;
  const auto [ct_lo, ct_hi] = extent(ct);
  Vec3 box_centre;
  const Vec3 spread{0.3 * bx, 0.3 * by, 0.25 * fov[2]};
  for (int a = 0; a < 3; ++a) {
    const double lo = std::max(ct_lo[a] + half + 2.0, c0[a] - spread[a]);
    const double hi = std::min(ct_hi[a] - half - 2.0, c0[a] + spread[a]);
    box_centre[a] = lo <= hi ? rng.uniform(lo, hi) : 0.5 * (ct_lo[a] + ct_hi[a]);
  }
  transforms::BoundingBox box{{box_centre[0] - half, box_centre[1] - half, box_centre[2] - half},
                              {box_centre[0] + half, box_centre[1] + half, box_centre[2] + half}};
  // Lesion sizes follow the anatomy in phantoms smaller than the default (tiny test volumes).
  const double st = std::min(1.0, s);
  const Vec3 tr{st * rng.uniform(6, 11), st * rng.uniform(6, 11), st * rng.uniform(7, 12)};
  const Vec3 body_c{shapes[0].centre[0], shapes[0].centre[1], 0.0};
  // Inside the body (by `margin` mm) and clear of the airway and the spine (by `margin` mm).
  auto in_soft_tissue = [&](const Vec3& p, double margin) {
    const double ax = bx - margin, ay = by - margin;
    if (ax <= 0 || ay <= 0) return false;
    const double ex = (p[0] - body_c[0]) / ax, ey = (p[1] - body_c[1]) / ay;
    return ex * ex + ey * ey <= 1.0 && std::hypot(p[0] - c0[0], p[1] - (c0[1] - 8 * s)) > 6 * s + margin &&
           std::hypot(p[0] - c0[0], p[1] - (c0[1] + 24 * s)) > 7 * s + margin;
  };
  const double max_r = std::max({tr[0], tr[1], tr[2]}) * 1.25;
  // Inside the bbox and in soft tissue, beside (not on) the airway and the spine, as an oropharyngeal tumour.
  Vec3 tc;
  for (int attempt = 0; attempt < 200; ++attempt) {
    for (int a = 0; a < 3; ++a) {
      const double delta = std::max(0.0, half - max_r - 2.0);
      tc[a] = box_centre[a] + rng.uniform(-delta, delta);
    }
    if (in_soft_tissue(tc, max_r + 1.0)) break;
  }
  // Hard: the tumour is barely denser than soft tissue and takes up about as much tracer as the glands.
  Shape tumour = ellipsoid(tc, tr,
                           hard ? std::vector<double>{rng.uniform(60, 80), rng.uniform(3.5, 6.0)}
                                : std::vector<double>{rng.uniform(85, 105), rng.uniform(7, 14)},
                           "tumour", 1);
  tumour.angle_z = rng.uniform(0, M_PI);
  tumour.bumps = random_bumps(rng, 3, 0.07);

  for (int side = -1; side <= 1; side += 2) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      const Vec3 gc = at(side * (24 * s + rng.uniform(-2, 2)), -4 * s + rng.uniform(-2, 2), rng.uniform(-0.15, 0.15) * fov[2]);
      const Vec3 gr{7 * s * rng.uniform(0.9, 1.1), 6 * s * rng.uniform(0.9, 1.1), 9 * s * rng.uniform(0.9, 1.1)};
      if (dist(gc, tc) < max_r + gr[2] + 2.0 && attempt < 19) continue;
      shapes.push_back(ellipsoid(gc, gr, {35.0, hard ? rng.uniform(3.5, 6.0) : rng.uniform(3.0, 4.5)}, "pet_only"));
      break;
    }
  }
  if (hard) {
    // A PET-hot node without a CT mass right beside the tumour, and a CT mass without uptake touching it from the
    // other side: neither channel alone outlines the tumour.
    const double r = st * rng.uniform(4, 6);
    for (int k = 0; k < 2; ++k) {
      const double angle = rng.uniform(0, 2 * M_PI);
      const double reach = max_r + r + rng.uniform(0.5, 2.0);
      const Vec3 nc{tc[0] + (k ? -1 : 1) * reach * std::cos(angle), tc[1] + (k ? -1 : 1) * reach * std::sin(angle),
                    tc[2] + rng.uniform(-2, 2)};
      if (!in_soft_tissue(nc, r + 1.0)) continue;
      Shape node = ellipsoid(nc, {r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.9, 1.2)},
                             k == 0 ? std::vector<double>{kNaN, rng.uniform(3.5, 6.0)}
                                    : std::vector<double>{rng.uniform(60, 80), kNaN},
                             k == 0 ? "pet_only" : "ct_only");
      node.bumps = random_bumps(rng, 2, 0.05);
      shapes.push_back(node);
    }
  }
  // CT masses without uptake (enhancing benign nodes): the same CT look as the tumour, PET unchanged.
  const int masses = 1 + int(rng.below(2));
  for (int m = 0; m < masses; ++m) {
    // In the neck (below the brain), away from the tumour.
    for (int attempt = 0; attempt < 100; ++attempt) {
      const double r = st * rng.uniform(4, 8);
      const Vec3 mc = at(rng.uniform(-0.8, 0.8) * bx, rng.uniform(-0.8, 0.5) * by, rng.uniform(-0.45, 0.05) * fov[2]);
      if (dist(mc, tc) < max_r + 1.3 * r + 3.0 || mc[2] - c0[2] + 1.3 * r > brain_bottom - 1.0 ||
          !in_soft_tissue(mc, 1.3 * r + 1.0))
        continue;
      Shape mass = ellipsoid(mc, {r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.9, 1.3)},
                             {hard ? rng.uniform(60, 80) : rng.uniform(90, 110), kNaN}, "ct_only");
      mass.bumps = random_bumps(rng, 2, 0.05);
      shapes.push_back(mass);
      break;
    }
  }
  shapes.push_back(tumour);

  Phantom p;
  p.id = name.id;
  p.patient_id = name.patient_id;
  p.channel_names = {"CT", "PET"};
  p.bbox = box;
  torch::Tensor ct_data = render(shapes, -1000.0, 0, ct);
  add_noise(ct_data, rng, 10.0, 0.0, -1024.0, 3071.0);
  ct_data = ct_data.round();
  // PET: 4 mm voxels on its own grid, covering the CT with a margin and starting at another origin.
  const Vec3 pet_sp{4.0, 4.0, 4.0};
  Size3 pet_n;
  Vec3 pet_lo;
  for (int a = 0; a < 3; ++a) {
    pet_lo[a] = ct_lo[a] - 6.0 + rng.uniform(0.0, 4.0);
    pet_n[a] = int64_t(std::ceil((ct_hi[a] + 6.0 - pet_lo[a]) / pet_sp[a]));
  }
  Grid pet;
  pet.size = pet_n;
  pet.geometry.spacing = pet_sp;
  for (int a = 0; a < 3; ++a) pet.geometry.origin[a] = pet_lo[a] + 0.5 * pet_sp[a];
  torch::Tensor pet_data = render(shapes, 0.0, 1, pet);
  pet_data = blur(pet_data, {2.5 / pet_sp[0], 2.5 / pet_sp[1], 2.5 / pet_sp[2]});
  if (hard)
    add_noise(pet_data, rng, 0.25, 0.2, 0.0, 1e6);
  else
    add_noise(pet_data, rng, 0.04, 0.06, 0.0, 1e6);
  p.channels = {io::Volume{ct_data, ct.geometry}, io::Volume{pet_data, pet.geometry}};
  torch::Tensor label;
  render_masks(shapes, ct, label, p.structures, {"tumour", "pet_only", "ct_only"});
  p.label = io::Volume{label, ct.geometry};
  p.lesions = int(transforms::count_components(label, 26));
  return p;
}

// Long on purpose: one sequential recipe (grids, gland, zones, lesions, the three sequences), as make_petct.
Phantom make_mri(const SynthOptions& options, int index, const CaseName& name) {
  SynthRng rng(mix_seed(options.seed, uint64_t(index)));
  const bool hard = options.difficulty == PhantomDifficulty::Hard;
  const Size3 n = options.resolved_size();
  const Vec3 sp{0.5, 0.5, 3.0};
  const Vec3 fov{double(n[0]) * sp[0], double(n[1]) * sp[1], double(n[2]) * sp[2]};
  const double s = std::min(fov[0], fov[1]) / 64.0;
  const Vec3 c0{rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(-40, 40)};
  const Grid t2w = make_grid(n, sp, c0);
  auto at = [&](double x, double y, double z) { return Vec3{c0[0] + x, c0[1] + y, c0[2] + z}; };

  // Channel values: {T2W (a.u.), ADC (10^-6 mm^2/s), HBV (a.u.)}; background = pelvic muscle.
  std::vector<Shape> shapes;
  const Vec3 pr{20 * s * rng.uniform(0.9, 1.1), 15 * s * rng.uniform(0.9, 1.1), 16 * s * rng.uniform(0.9, 1.1)};
  const Vec3 pc = at(rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-3, 3));
  shapes.push_back(ellipsoid(at(0, -6 * s, 26 * s), {18 * s, 16 * s, 12 * s}, {950.0, 2900.0, 4.0}));  // bladder
  shapes.push_back(ellipsoid(at(0, 22 * s, 0), {10 * s, 8 * s, 30 * s}, {60.0, 600.0, 3.0}));          // rectum
  // Peripheral zone (bright on T2W) = the gland; the transition zone is drawn over its anterior-central part.
  shapes.push_back(ellipsoid(pc, pr, {520.0, 1750.0, 10.0}));
  const Vec3 tzc{pc[0], pc[1] - 0.2 * pr[1], pc[2] + 0.1 * pr[2]};
  const Vec3 tzr{0.6 * pr[0], 0.6 * pr[1], 0.65 * pr[2]};
  Shape tz = ellipsoid(tzc, tzr, {330.0, 1250.0, 12.0});
  tz.bumps = random_bumps(rng, 2, 0.06);
  shapes.push_back(tz);

  auto in_ellipsoid = [](const Vec3& p, const Vec3& c, const Vec3& r, double scale) {
    const double x = (p[0] - c[0]) / r[0], y = (p[1] - c[1]) / r[1], z = (p[2] - c[2]) / r[2];
    return x * x + y * y + z * z < scale * scale;
  };
  // A random point of the peripheral zone (in the gland, outside the TZ) or of the TZ.
  auto zone_point = [&](bool peripheral) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      const Vec3 q{pc[0] + rng.uniform(-1, 1) * pr[0], pc[1] + rng.uniform(-1, 1) * pr[1], pc[2] + rng.uniform(-0.7, 0.7) * pr[2]};
      if (!in_ellipsoid(q, pc, pr, 0.8)) continue;
      if (peripheral == in_ellipsoid(q, tzc, tzr, 1.15)) continue;
      return q;
    }
    return peripheral ? Vec3{pc[0], pc[1] + 0.75 * pr[1], pc[2]} : tzc;
  };
  // csPCa lesions (about half the cases are negative), then mimics that fool one sequence each: BPH nodules
  // dark on T2W only (TZ) and inflammation dark on ADC only (PZ), kept apart from the lesions and each other.
  struct Placed {
    Vec3 centre;
    double radius;
  };
  std::vector<Placed> placed;
  auto free_spot = [&](bool peripheral, double r) {
    Vec3 q = zone_point(peripheral);
    for (int attempt = 0; attempt < 40; ++attempt) {
      bool clear = true;
      for (const auto& o : placed) clear = clear && dist(q, o.centre) > o.radius + r + 2.0;
      if (clear) break;
      q = zone_point(peripheral);
    }
    placed.push_back({q, r});
    return q;
  };
  const double sm = std::min(1.0, s);  // lesion sizes follow the anatomy in small phantoms
  std::vector<Shape> lesion_shapes;
  const bool positive = !rng.bernoulli(0.5);
  const int lesions = positive ? 1 + int(rng.bernoulli(0.3)) : 0;
  for (int l = 0; l < lesions; ++l) {
    const double r = sm * rng.uniform(3.5, 7);
    const Vec3 radii{r, r * rng.uniform(0.8, 1.2), std::max(3.5, r * rng.uniform(0.9, 1.3))};
    const Vec3 lc = free_spot(rng.bernoulli(0.7), 1.25 * std::max({radii[0], radii[1], radii[2]}));
    const int isup = 2 + int(rng.below(4));
    // Hard: T2W like a BPH nodule, ADC like inflammation, a faint HBV signal.
    Shape lesion = ellipsoid(lc, radii,
                             hard ? std::vector<double>{rng.uniform(180, 230), rng.uniform(800, 950), rng.uniform(20, 32)}
                                  : std::vector<double>{rng.uniform(150, 190), rng.uniform(650, 800), rng.uniform(45, 65)},
                             "lesion", isup);
    lesion.bumps = random_bumps(rng, 3, 0.08);
    lesion_shapes.push_back(lesion);
  }
  const int bph = 1 + int(rng.below(2));
  for (int m = 0; m < bph; ++m) {
    const double r = sm * rng.uniform(3, 6);
    const Vec3 radii{r, r * rng.uniform(0.8, 1.2), std::max(3.5, r)};
    Shape nodule = ellipsoid(free_spot(false, 1.1 * std::max({radii[0], radii[1], radii[2]})), radii, {190.0, kNaN, kNaN}, "t2w_only");
    nodule.bumps = random_bumps(rng, 2, 0.05);
    shapes.push_back(nodule);
  }
  if (rng.bernoulli(hard ? 1.0 : 0.7)) {
    const double r = sm * rng.uniform(3, 5);
    const Vec3 radii{r * 1.2, r, std::max(3.5, r)};
    shapes.push_back(ellipsoid(free_spot(true, std::max({radii[0], radii[1], radii[2]})), radii,
                               {kNaN, hard ? rng.uniform(800, 950) : 900.0, kNaN}, "adc_only"));
  }
  if (hard) {
    // Bright-HBV benign spots (a T2W- and ADC-normal signal that restricts diffusion a little).
    const double r = sm * rng.uniform(2.5, 4);
    const Vec3 radii{r, r, std::max(3.5, r)};
    shapes.push_back(ellipsoid(free_spot(rng.bernoulli(0.5), std::max({radii[0], radii[1], radii[2]})), radii,
                               {kNaN, kNaN, rng.uniform(20, 32)}, "hbv_only"));
  }
  for (auto& l : lesion_shapes) shapes.push_back(std::move(l));

  Phantom p;
  p.id = name.id;
  p.patient_id = name.patient_id;
  p.channel_names = {"T2W", "ADC", "HBV"};
  torch::Tensor t2 = render(shapes, 280.0, 0, t2w);
  add_noise(t2, rng, 12.0, 0.0, 0.0, 4000.0);
  t2 = t2.round();
  // ADC and HBV come from one diffusion acquisition: 2x2x3 mm, an offset origin and sometimes a small rotation.
  const Vec3 dsp{2.0, 2.0, 3.0};
  const Size3 dn{int64_t(std::ceil(fov[0] / dsp[0])) + 1, int64_t(std::ceil(fov[1] / dsp[1])) + 1, n[2]};
  const double angle = rng.bernoulli(0.5) ? rng.uniform(-3.0, 3.0) * M_PI / 180.0 : 0.0;
  const Grid dwi = make_grid(dn, dsp, at(rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-1.0, 1.0)), angle);
  torch::Tensor adc = render(shapes, 1450.0, 1, dwi);
  add_noise(adc, rng, 50.0, 0.0, 0.0, 4000.0);
  adc = adc.round();
  torch::Tensor hbv = render(shapes, 8.0, 2, dwi);
  if (hard)
    add_noise(hbv, rng, 2.5, 0.3, 0.0, 1e4);
  else
    add_noise(hbv, rng, 1.0, 0.15, 0.0, 1e4);
  p.channels = {io::Volume{t2, t2w.geometry}, io::Volume{adc, dwi.geometry}, io::Volume{hbv, dwi.geometry}};
  torch::Tensor label;
  render_masks(shapes, t2w, label, p.structures, {"lesion", "t2w_only", "adc_only", "hbv_only"});
  p.label = io::Volume{label, t2w.geometry};
  p.lesions = int(transforms::count_components(label, 26));
  return p;
}

}  // namespace teachformer::data::detail
