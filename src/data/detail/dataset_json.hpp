// The opening both dataset.json layouts share (nnU-Net v2 and MSD / nnU-Net v1): the file as an object, the
// dataset name, the channel map, and the checks on the label list once read.
#pragma once
#include <filesystem>
#include <string>

#include "teachformer/core/json.hpp"
#include "teachformer/data/dataset.hpp"

namespace teachformer::data::detail {

/// How a dataset.json layout names its channels.
struct ChannelMapSpec {
  /// Key of the channel map: "channel_names" (nnU-Net v2) or "modality" (MSD).
  const char* key;
  /// The other layout's key: present without `key`, the file belongs to the other reader.
  const char* other_key;
  /// What to say then, e.g. "this is an MSD / nnU-Net v1 dataset.json (hint: --format msd)".
  const char* other_hint;
  /// An example map for the messages, e.g. {"0": "CT", "1": "PET"}.
  const char* example;
};

/// Reads root/dataset.json, which must be an object; sets ds.root, ds.name (the folder's name unless "name" is
/// given) and ds.channel_names from the map `spec.key` with keys "0".."N-1". Throws DatasetError naming the file.
Json open_dataset_json(const std::filesystem::path& root, const ChannelMapSpec& spec, Dataset& ds);

/// After the labels were read: sorts ds.labels by value, reports a missing background (value 0) as a problem of
/// `dataset_json` with `hint`, and fills ds.raw_label_values.
void finish_labels(Dataset& ds, const std::filesystem::path& dataset_json, const std::string& hint);

}  // namespace teachformer::data::detail
