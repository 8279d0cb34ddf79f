// safetensors files: 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}},
// optional "__metadata__" (string -> string), then raw little-endian data. No pickle, nothing executed.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include <torch/types.h>

namespace teachformer::io {

/// Tensors by name (sorted) plus string metadata.
struct SafeTensors {
  std::map<std::string, torch::Tensor> tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`; throws InvalidArgument listing the available names when absent.
  const torch::Tensor& at(const std::string& name) const;
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
};

/// Reads a safetensors file: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL. Every size and offset in
/// the header is checked against the file before anything is allocated; errors name the path and the tensor.
/// A name ending in ".gz" is a gzip-compressed safetensors file (used for the teacher cache).
SafeTensors read_safetensors(const std::filesystem::path& path);
/// Reads only the header: tensor names with dtype and shape (values are empty tensors) and the metadata.
SafeTensors read_safetensors_header(const std::filesystem::path& path);
/// Writes tensors (moved to CPU, made contiguous) and metadata atomically; gzip-compressed when the name ends
/// in ".gz".
void write_safetensors(const std::filesystem::path& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace teachformer::io
