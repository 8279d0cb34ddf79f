#include "teachformer/data/case.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>

#include "teachformer/core/error.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data {
namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}
}  // namespace

int reference_channel_index(const std::vector<std::string>& channel_names) {
  for (size_t i = 0; i < channel_names.size(); ++i)
    if (lower(channel_names[i]) == "ct") return int(i);
  for (size_t i = 0; i < channel_names.size(); ++i)
    if (lower(channel_names[i]) == "t2w" || lower(channel_names[i]) == "t2") return int(i);
  return 0;
}

LoadedCase Case::load() const {
  TF_CHECK(!channel_names.empty(), DatasetError, "case '", id, "': no channels");
  TF_CHECK(channel_files.size() == channel_names.size() || multichannel_file(), DatasetError, "case '", id, "': ",
           channel_files.size(), " channel files for ", channel_names.size(), " channels ", channel_names);
  LoadedCase out;
  out.reference_index = reference_channel_index(channel_names);
  if (multichannel_file()) {
    const io::Volume all = io::read_image(channel_files.front());
    TF_CHECK(all.channels() == int64_t(channel_names.size()), DatasetError, "'", channel_files.front().string(),
             "': expected ", channel_names.size(), " channels ", channel_names, ", found ", all.channels(),
             " (hint: the 4th dimension of a 4D image holds the channels)");
    for (int64_t c = 0; c < all.channels(); ++c)
      out.channels.push_back(io::Volume{all.data.narrow(0, c, 1).clone(), all.geometry});
  } else {
    for (const auto& file : channel_files) {
      io::Volume v = std::filesystem::is_directory(file) ? io::read_dicom_series(file, dicom) : io::read_image(file);
      TF_CHECK(v.channels() == 1, DatasetError, "'", file.string(), "': expected a single-channel 3D image, found ",
               v.channels(), " channels");
      out.channels.push_back(std::move(v));
    }
  }
  // MHA/NRRD keep NaN/Inf (the NIfTI reader zeroes them): refuse them here rather than let resampling spread them.
  for (size_t c = 0; c < out.channels.size(); ++c)
    TF_CHECK(out.channels[c].data.isfinite().all().item<bool>(), DatasetError, "'",
             channel_files[multichannel_file() ? 0 : c].string(), "': channel '", channel_names[c],
             "' has NaN or Inf voxels (hint: teachformer verify counts them)");
  if (label_file) {
    io::Volume label = io::read_label(*label_file);
    if (binarize_label) label.data = label.data.ge(1).to(torch::kUInt8);
    out.label = std::move(label);
  }
  return out;
}

}  // namespace teachformer::data
