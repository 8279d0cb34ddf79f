#include "teachformer/inference/sliding_window.hpp"

#include <algorithm>
#include <numeric>
#include <set>

#include <torch/torch.h>

#include "teachformer/core/device.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::inference {

std::string to_string(Accumulate accumulate) {
  return accumulate == Accumulate::Probabilities ? "probabilities" : "logits";
}

Accumulate parse_accumulate(const std::string& text, const std::string& context) {
  if (text == "probabilities") return Accumulate::Probabilities;
  if (text == "logits") return Accumulate::Logits;
  TF_THROW(ConfigError, context, ": accumulate must be \"probabilities\" or \"logits\", got \"", text, "\"");
}

namespace {

const char* kContext = "sliding window";

std::string dtype_name(torch::Dtype dtype) {
  if (dtype == torch::kFloat) return "float32";
  if (dtype == torch::kHalf) return "float16";
  return c10::toString(dtype);
}

torch::Dtype parse_dtype(const std::string& text, const std::string& context) {
  if (text == "float32") return torch::kFloat;
  if (text == "float16") return torch::kHalf;
  TF_THROW(ConfigError, context, ": output_dtype must be \"float32\" or \"float16\", got \"", text, "\"");
}

torch::Device parse_device_option(const std::string& text, const std::string& key, const std::string& context) {
  try {
    return parse_device(text);
  } catch (const InvalidArgument& e) {
    TF_THROW(ConfigError, context, ": ", key, ": ", e.what());
  }
}

std::vector<int64_t> as_vector(const std::array<int64_t, 3>& a) { return {a[0], a[1], a[2]}; }

}  // namespace

void validate(const SlidingWindowOptions& o) {
  TF_CHECK(o.roi_size().size() == 3, InvalidArgument, kContext, ": roi_size must have 3 values [Z, Y, X], got ",
           o.roi_size());
  for (size_t d = 0; d < 3; ++d)
    TF_CHECK(o.roi_size()[d] >= 1, InvalidArgument, kContext, ": roi_size ", o.roi_size(),
             " must be >= 1 in every dim (dim ", d, " is ", o.roi_size()[d], ")");
  TF_CHECK(o.overlap() >= 0.0 && o.overlap() < 1.0, InvalidArgument, kContext, ": overlap must be in [0, 1), got ",
           o.overlap());
  TF_CHECK(o.sw_batch_size() >= 1, InvalidArgument, kContext, ": sw_batch_size must be >= 1, got ", o.sw_batch_size());
  TF_CHECK(o.sigma_scale() > 0.0, InvalidArgument, kContext, ": sigma_scale must be > 0, got ", o.sigma_scale());
  std::set<int64_t> seen;
  for (int64_t axis : o.mirror_axes()) {
    TF_CHECK(axis >= 0 && axis <= 2, InvalidArgument, kContext, ": mirror_axes ", o.mirror_axes(),
             " may only hold spatial axes 0 (Z), 1 (Y), 2 (X); got ", axis);
    TF_CHECK(seen.insert(axis).second, InvalidArgument, kContext, ": mirror_axes ", o.mirror_axes(), " repeats axis ",
             axis);
  }
  TF_CHECK(o.output_dtype() == torch::kFloat || o.output_dtype() == torch::kHalf, InvalidArgument, kContext,
           ": output_dtype must be float32 or float16, got ", dtype_name(o.output_dtype()));
}

void from_json(const nlohmann::json& j, SlidingWindowOptions& options) {
  const std::string context = "sliding window options";
  JsonReader r(j, context);
  r.get("roi_size", options.roi_size());
  r.get("overlap", options.overlap());
  r.get("sw_batch_size", options.sw_batch_size());
  std::string mode = to_string(options.mode());
  r.get("mode", mode);
  r.get("sigma_scale", options.sigma_scale());
  std::string placement = to_string(options.placement());
  r.get("placement", placement);
  r.get("padding_value", options.padding_value());
  std::string accumulate = to_string(options.accumulate());
  r.get("accumulate", accumulate);
  r.get("mirror_axes", options.mirror_axes());
  std::string device = options.device().str();
  r.get("device", device);
  std::string stitch_device = options.stitch_device().str();
  r.get("stitch_device", stitch_device);
  std::string output_dtype = dtype_name(options.output_dtype());
  r.get("output_dtype", output_dtype);
  r.finish();
  options.mode(parse_blend_mode(mode, context));
  options.placement(parse_window_placement(placement, context));
  options.accumulate(parse_accumulate(accumulate, context));
  options.device(parse_device_option(device, "device", context));
  options.stitch_device(parse_device_option(stitch_device, "stitch_device", context));
  options.output_dtype(parse_dtype(output_dtype, context));
  try {
    validate(options);
  } catch (const InvalidArgument& e) {
    throw ConfigError(e.what());
  }
}

void to_json(nlohmann::json& j, const SlidingWindowOptions& options) {
  j = nlohmann::json{{"roi_size", options.roi_size()},
                     {"overlap", options.overlap()},
                     {"sw_batch_size", options.sw_batch_size()},
                     {"mode", to_string(options.mode())},
                     {"sigma_scale", options.sigma_scale()},
                     {"placement", to_string(options.placement())},
                     {"padding_value", options.padding_value()},
                     {"accumulate", to_string(options.accumulate())},
                     {"mirror_axes", options.mirror_axes()},
                     {"device", options.device().str()},
                     {"stitch_device", options.stitch_device().str()},
                     {"output_dtype", dtype_name(options.output_dtype())}};
}

const torch::Tensor& SlidingWindowResult::at(const std::string& name) const {
  for (const auto& [n, t] : outputs)
    if (n == name) return t;
  std::vector<std::string> names;
  for (const auto& [n, t] : outputs) names.push_back(n);
  TF_THROW(InvalidArgument, "sliding window result: no output '", name, "'; outputs are ", names);
}

std::vector<std::vector<int64_t>> mirror_combinations(const std::vector<int64_t>& axes) {
  std::vector<std::vector<int64_t>> combos;
  const size_t k = axes.size();
  for (size_t size = 0; size <= k; ++size) {
    // All subsets of `size` elements, in lexicographic order of positions.
    std::vector<bool> pick(k, false);
    std::fill(pick.begin(), pick.begin() + static_cast<std::ptrdiff_t>(size), true);
    do {
      std::vector<int64_t> combo;
      for (size_t i = 0; i < k; ++i)
        if (pick[i]) combo.push_back(axes[i]);
      combos.push_back(std::move(combo));
    } while (std::prev_permutation(pick.begin(), pick.end()));
  }
  return combos;
}

namespace {

// One resolution at which outputs are stitched: its factor, importance map and the shared weight map.
struct StitchGrid {
  std::array<int64_t, 3> factor{};
  torch::Tensor importance;  // [rz/fz, ry/fy, rx/fx]
  torch::Tensor weight;      // [Zp/fz, Yp/fy, Xp/fx]
};

// View of `t`'s last three dims at window `origin` (padded voxel coordinates) for factor `f`.
torch::Tensor window_view(const torch::Tensor& t, const std::array<int64_t, 3>& origin,
                          const std::array<int64_t, 3>& roi, const std::array<int64_t, 3>& f) {
  const int64_t first = t.dim() - 3;
  return t.narrow(first, origin[0] / f[0], roi[0] / f[0])
      .narrow(first + 1, origin[1] / f[1], roi[1] / f[1])
      .narrow(first + 2, origin[2] / f[2], roi[2] / f[2]);
}

// One grid (importance map + weight map) per distinct downsampling factor of `outputs`; grid_of[k] is output k's.
// The weight map sums the importance of every window, times `passes`: every window is accumulated once per member
// and mirroring, so the final division is the mean over passes as well.
std::vector<StitchGrid> make_stitch_grids(const std::vector<WindowOutput>& outputs, const std::array<int64_t, 3>& roi,
                                          const WindowPlan& plan, const SlidingWindowOptions& options, int64_t passes,
                                          std::vector<size_t>& grid_of) {
  const auto stitch = options.stitch_device();
  std::vector<StitchGrid> grids;
  grid_of.assign(outputs.size(), 0);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const auto& f = outputs[k].downsample;
    size_t g = 0;
    while (g < grids.size() && grids[g].factor != f) ++g;
    if (g == grids.size()) {
      StitchGrid grid;
      grid.factor = f;
      grid.importance =
          importance_map({roi[0] / f[0], roi[1] / f[1], roi[2] / f[2]}, options.mode(), options.sigma_scale(), stitch);
      grid.weight = torch::zeros(
          {plan.axes[0].padded_size / f[0], plan.axes[1].padded_size / f[1], plan.axes[2].padded_size / f[2]},
          torch::TensorOptions().dtype(torch::kFloat).device(stitch));
      grids.push_back(std::move(grid));
    }
    grid_of[k] = g;
  }
  for (int64_t w = 0; w < plan.count(); ++w) {
    const auto origin = plan.origin(w);
    for (auto& grid : grids) window_view(grid.weight, origin, roi, grid.factor).add_(grid.importance);
  }
  for (auto& grid : grids) grid.weight.mul_(static_cast<double>(passes));
  return grids;
}

// The weighted mean of an accumulator [B, C, ...padded grid / factor], cropped back to the image and cast.
torch::Tensor finish_output(torch::Tensor acc, const StitchGrid& grid, const WindowPlan& plan,
                            const SlidingWindowOptions& options) {
  acc.div_(grid.weight);
  for (int d = 0; d < 3; ++d) {
    const int64_t f = grid.factor[d];
    const int64_t begin = plan.axes[d].pad_before / f;
    const int64_t length = (plan.axes[d].size + f - 1) / f;
    if (begin != 0 || length != acc.size(2 + d)) acc = acc.narrow(2 + d, begin, length);
  }
  if (options.output_dtype() != torch::kFloat) return acc.to(options.output_dtype());
  return acc.is_contiguous() ? acc : acc.contiguous();
}

void check_outputs(const std::vector<WindowOutput>& outputs, const std::vector<int64_t>& roi) {
  TF_CHECK(!outputs.empty(), InvalidArgument, kContext, ": at least one output must be declared");
  std::set<std::string> names;
  for (const auto& o : outputs) {
    TF_CHECK(!o.name.empty(), InvalidArgument, kContext, ": output names must not be empty");
    TF_CHECK(names.insert(o.name).second, InvalidArgument, kContext, ": output '", o.name, "' is declared twice");
    for (int d = 0; d < 3; ++d)
      TF_CHECK(o.downsample[d] >= 1 && roi[d] % o.downsample[d] == 0, InvalidArgument, kContext, ": output '", o.name,
               "' downsample ", as_vector(o.downsample), " must be >= 1 and divide roi_size ", roi,
               " in every dim (dim ", d, ")");
  }
}

}  // namespace

// Long on purpose: the window loop with its stitching; building the grids and finishing the outputs are their own
// functions.
SlidingWindowResult sliding_window_inference(const torch::Tensor& image, const std::vector<WindowFunction>& members,
                                             const std::vector<WindowOutput>& outputs,
                                             const SlidingWindowOptions& options,
                                             const SlidingWindowProgress& progress) {
  validate(options);
  const auto& roi_vec = options.roi_size();
  check_outputs(outputs, roi_vec);
  TF_CHECK(image.defined() && (image.dim() == 4 || image.dim() == 5), InvalidArgument, kContext,
           ": image must be [C, Z, Y, X] or [B, C, Z, Y, X], got shape ",
           image.defined() ? image.sizes().vec() : std::vector<int64_t>{});
  TF_CHECK(!members.empty(), InvalidArgument, kContext, ": at least one window function (model) is needed");
  for (size_t m = 0; m < members.size(); ++m)
    TF_CHECK(static_cast<bool>(members[m]), InvalidArgument, kContext, ": window function ", m, " is empty");

  torch::NoGradGuard no_grad;
  const bool batched = image.dim() == 5;
  torch::Tensor input = batched ? image : image.unsqueeze(0);
  TF_CHECK(input.numel() > 0, InvalidArgument, kContext, ": image is empty (shape ", image.sizes().vec(), ")");
  const int64_t batch = input.size(0);
  const std::vector<int64_t> spatial = input.sizes().slice(2).vec();
  const std::array<int64_t, 3> roi{roi_vec[0], roi_vec[1], roi_vec[2]};

  std::array<int64_t, 3> align{1, 1, 1};
  for (const auto& o : outputs)
    for (int d = 0; d < 3; ++d) align[d] = std::lcm(align[d], o.downsample[d]);
  const WindowPlan plan = plan_windows(spatial, roi_vec, options.overlap(), options.placement(), align);
  if (plan.padded()) {
    const auto& a = plan.axes;
    input = torch::constant_pad_nd(input,
                                   {a[2].pad_before, a[2].padded_size - a[2].size - a[2].pad_before, a[1].pad_before,
                                    a[1].padded_size - a[1].size - a[1].pad_before, a[0].pad_before,
                                    a[0].padded_size - a[0].size - a[0].pad_before},
                                   options.padding_value());
  }

  const auto combos = mirror_combinations(options.mirror_axes());
  const int64_t passes = static_cast<int64_t>(members.size() * combos.size());
  const auto stitch = options.stitch_device();
  const auto float_on_stitch = torch::TensorOptions().dtype(torch::kFloat).device(stitch);

  std::vector<size_t> grid_of;
  std::vector<StitchGrid> grids = make_stitch_grids(outputs, roi, plan, options, passes, grid_of);
  const int64_t windows = plan.count();

  std::vector<torch::Tensor> accumulators(outputs.size());
  std::vector<int64_t> flip_dims;
  int64_t done = 0;
  int64_t calls = 0;
  const int64_t total = batch * windows;
  for (int64_t b = 0; b < batch; ++b) {
    const auto item = input[b];
    for (int64_t first = 0; first < windows; first += options.sw_batch_size()) {
      const int64_t count = std::min(options.sw_batch_size(), windows - first);
      std::vector<std::array<int64_t, 3>> origins;
      std::vector<torch::Tensor> crops;
      for (int64_t i = 0; i < count; ++i) {
        origins.push_back(plan.origin(first + i));
        crops.push_back(window_view(item, origins.back(), roi, {1, 1, 1}));
      }
      const auto windows_batch = torch::stack(crops).to(options.device());
      crops.clear();
      for (size_t m = 0; m < members.size(); ++m) {
        for (const auto& combo : combos) {
          flip_dims.clear();
          for (int64_t axis : combo) flip_dims.push_back(axis + 2);
          const auto x = combo.empty() ? windows_batch : windows_batch.flip(flip_dims);
          auto results = members[m](x);
          ++calls;
          TF_CHECK(results.size() == outputs.size(), InvalidArgument, kContext, ": window function ", m, " returned ",
                   results.size(), " tensors, expected ", outputs.size(), " (one per declared output)");
          for (size_t k = 0; k < outputs.size(); ++k) {
            const auto& spec = outputs[k];
            const auto& f = spec.downsample;
            auto y = results[k];
            const std::vector<int64_t> expected_spatial{roi[0] / f[0], roi[1] / f[1], roi[2] / f[2]};
            TF_CHECK(y.defined() && y.dim() == 5 && y.size(0) == count && y.sizes().slice(2).vec() == expected_spatial,
                     InvalidArgument, kContext, ": window function ", m, " output '", spec.name, "' has shape ",
                     y.defined() ? y.sizes().vec() : std::vector<int64_t>{}, ", expected [", count, ", C, ",
                     expected_spatial[0], ", ", expected_spatial[1], ", ", expected_spatial[2], "] (window ", roi_vec,
                     " / downsample ", as_vector(f), ")");
            if (!combo.empty()) y = y.flip(flip_dims);
            if (spec.kind == OutputKind::Segmentation && options.accumulate() == Accumulate::Probabilities)
              y = torch::softmax(y.to(torch::kFloat), 1);
            y = y.to(stitch, torch::kFloat);
            auto& acc = accumulators[k];
            if (!acc.defined()) {
              const auto& g = grids[grid_of[k]];
              acc = torch::zeros({batch, y.size(1), g.weight.size(0), g.weight.size(1), g.weight.size(2)},
                                 float_on_stitch);
            }
            TF_CHECK(acc.size(1) == y.size(1), InvalidArgument, kContext, ": window function ", m, " output '",
                     spec.name, "' has ", y.size(1), " channels, but earlier windows had ", acc.size(1));
            const auto& importance = grids[grid_of[k]].importance;
            const auto acc_b = acc[b];
            for (int64_t i = 0; i < count; ++i) window_view(acc_b, origins[i], roi, f).addcmul_(y[i], importance);
          }
        }
      }
      done += count;
      if (progress) progress(done, total);
    }
  }

  SlidingWindowResult result;
  result.windows = windows;
  result.function_calls = calls;
  for (size_t k = 0; k < outputs.size(); ++k) {
    torch::Tensor out = finish_output(std::move(accumulators[k]), grids[grid_of[k]], plan, options);
    result.outputs.emplace_back(outputs[k].name, batched ? std::move(out) : out.squeeze(0));
  }
  return result;
}

torch::Tensor sliding_window_inference(const torch::Tensor& image, const WindowFunction& function,
                                       const SlidingWindowOptions& options) {
  auto result = sliding_window_inference(image, std::vector<WindowFunction>{function}, {WindowOutput{}}, options);
  return std::move(result.outputs.front().second);
}

}  // namespace teachformer::inference
