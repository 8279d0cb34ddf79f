// teachformer forward: run one model (eval mode) on a tensor from a safetensors file and write its outputs and taps.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/weights.hpp"

namespace teachformer::app {
namespace {

// "file.safetensors[:tensor]": the tensor name follows the last ':' unless the whole text names an existing file.
std::pair<std::string, std::string> split_input(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || fs::exists(text) || text.find('/', colon) != std::string::npos)
    return {text, "input"};
  return {text.substr(0, colon), text.substr(colon + 1)};
}

}  // namespace

void register_forward(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "forward",
      "Run one model in eval mode on a tensor [C, D, H, W] or [B, C, D, H, W] from a safetensors file and write "
      "`output`, `output_ds1..` (deep supervision, 1/2 first) and the taps (encoder_coarse, decoder_fine, plus "
      "attention / intermediates on request) to a safetensors file.");
  struct Args {
    std::string model, options, weights, input, output;
    std::vector<std::string> channels;
    bool attention = false, intermediates = false, no_features = false;
    int repeat = 1;
  };
  static Args a;
  const std::string io = "Input and output", mdl = "Model";
  cmd->add_option("-m,--model", a.model, "Registry key (default: from the weights' metadata)")->group(mdl);
  cmd->add_option("--options", a.options,
                  "Model options as a JSON string or file (e.g. a reference fixture's kwargs object as it is); "
                  "default: from the weights' metadata, else the model's defaults")
      ->group(mdl);
  cmd->add_option("--weights", a.weights,
                  "Weights (.safetensors): written by teachformer, or a plain state dict (then -m is required)")
      ->required()
      ->check(CLI::ExistingFile)
      ->group(mdl);
  cmd->add_option("--channels", a.channels,
                  "Input channel names in order (comma separated); checked against the weights' metadata")
      ->delimiter(',')
      ->group(mdl);
  cmd->add_option("-i,--input", a.input, "Input FILE.safetensors[:TENSOR] (tensor name default \"input\")")
      ->required()
      ->group(io);
  cmd->add_option("-o,--output", a.output, "Output .safetensors file (written atomically)")->required()->group(io);
  cmd->add_flag("--attention", a.attention, "Also write the attention probabilities (attention.*)")->group(io);
  cmd->add_flag("--intermediates", a.intermediates, "Also write the model's debugging intermediates")->group(io);
  cmd->add_flag("--no-features", a.no_features, "Do not write encoder_coarse / decoder_fine")->group(io);
  cmd->add_option("--repeat", a.repeat, "Run the forward this many times and report the median time")
      ->capture_default_str()
      ->check(kPositiveNumber)
      ->group(io);
  set_command(cmd, [] {
    const auto [input_file, tensor_name] = split_input(a.input);
    TF_CHECK(has_suffix(a.output, ".safetensors"), InvalidArgument, "-o/--output '", a.output,
             "' must end in .safetensors");
    if (!a.model.empty()) models::require_model_key(a.model);
    models::WeightsRequest request;
    request.model = a.model;
    request.channel_names = a.channels;
    if (!a.options.empty()) request.options = json_from_string_or_file(a.options);
    const models::LoadedModel loaded = models::load_model_weights(a.weights, request);
    if (!loaded.report.ignored.empty())
      std::fprintf(stderr, "note: %zu tensors of '%s' are not used by the model and were ignored (e.g. %s)\n",
                   loaded.report.ignored.size(), a.weights.c_str(), loaded.report.ignored.front().c_str());

    require_exists(input_file, "input file");
    const io::SafeTensors in = io::read_safetensors(input_file);
    torch::Tensor x = in.at(tensor_name);
    TF_CHECK(x.dim() == 4 || x.dim() == 5, InvalidArgument, "input '", input_file, ":", tensor_name,
             "' must be [C, D, H, W] or [B, C, D, H, W], got ", x.sizes().vec());
    TF_CHECK(x.is_floating_point(), InvalidArgument, "input '", input_file, ":", tensor_name,
             "' must be floating point, got ", x.dtype());
    if (x.dim() == 4) x = x.unsqueeze(0);
    x = x.to(torch::kFloat32).contiguous();

    models::SegmentationModelImpl& model = *loaded.model;
    model.eval();
    models::TapRequest taps;
    taps.features = !a.no_features;
    taps.attention = a.attention;
    taps.intermediates = a.intermediates;
    torch::InferenceMode guard;
    models::SegOutput out;
    std::vector<double> times;
    for (int r = 0; r < a.repeat; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      out = model.forward(x, taps);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());

    std::map<std::string, torch::Tensor> tensors{{"output", out.logits}};
    for (size_t i = 0; i < out.deep_supervision.size(); ++i)
      tensors["output_ds" + std::to_string(i + 1)] = out.deep_supervision[i];
    for (const auto& [name, tensor] : out.taps.items()) {
      TF_CHECK(!tensors.count(name), InternalError, "tap name '", name, "' collides with an output");
      tensors[name] = tensor;
    }
    const nlohmann::json meta = {{"model", model.spec().key},
                                 {"options", model.spec().options},
                                 {"weights", a.weights},
                                 {"input", input_file + ":" + tensor_name},
                                 {"forward_s", times[times.size() / 2]}};
    io::write_safetensors(a.output, tensors, {{"teachformer_forward", meta.dump()}});
    std::printf("%s: input %s -> output %s, %zu tensors written to %s\n", model.spec().key.c_str(),
                c10::str(x.sizes()).c_str(), c10::str(out.logits.sizes()).c_str(), tensors.size(), a.output.c_str());
    std::printf("forward %.3f s (median of %d), peak RSS %.0f MiB, %d threads\n", times[times.size() / 2], a.repeat,
                peak_rss_mib(), num_threads());
    return 0;
  });
}

}  // namespace teachformer::app
