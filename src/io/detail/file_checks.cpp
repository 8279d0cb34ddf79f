#include "io/detail/file_checks.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <string>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"

namespace teachformer::io::detail {
namespace {

// NIfTI-1 keeps vox_offset at byte 108 (float); NIfTI-2 at byte 168 (int64).
uint64_t nifti_vox_offset(const std::filesystem::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  TF_CHECK(f, IoError, "cannot open '", path.string(), "'");
  unsigned char hdr[540];
  const int n = gzread(f, hdr, sizeof hdr);
  gzclose(f);
  TF_CHECK(n >= 348, FormatError, "'", path.string(), "' is truncated: NIfTI header needs 348 bytes, found ",
           std::max(n, 0));
  int32_t sizeof_hdr;
  std::memcpy(&sizeof_hdr, hdr, 4);
  if (sizeof_hdr == 540 && n >= 540) {
    int64_t off;
    std::memcpy(&off, hdr + 168, 8);
    return off > 0 ? uint64_t(off) : 544;
  }
  float off;
  std::memcpy(&off, hdr + 108, 4);
  return off >= 352 ? uint64_t(off) : 352;
}

// The last 4 bytes of a gzip member hold the uncompressed size modulo 2^32.
uint32_t gzip_trailer_size(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(-4, std::ios::end);
  unsigned char b[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(b), 4);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  s.erase(s.find_last_not_of(" \t\r") + 1);
  return s;
}

void check_metaimage(const std::filesystem::path& path, uint64_t data_bytes) {
  std::ifstream in(path, std::ios::binary);
  TF_CHECK(in.good(), IoError, "cannot open '", path.string(), "'");
  bool compressed = false;
  uint64_t compressed_size = 0;
  std::string line, data_file;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq));
    const std::string value = trim(line.substr(eq + 1));
    if (key == "CompressedData") compressed = value == "True" || value == "true";
    if (key == "CompressedDataSize") compressed_size = std::stoull(value);
    if (key == "ElementDataFile") {
      data_file = value;
      break;
    }
  }
  if (data_file.empty()) return;  // let ITK report the malformed header
  uint64_t available = 0;
  if (data_file == "LOCAL") {
    const auto pos = static_cast<uint64_t>(in.tellg());
    available = std::filesystem::file_size(path) - pos;
  } else if (data_file.find_first_of("%*") == std::string::npos && data_file != "LIST") {
    const auto raw = path.parent_path() / data_file;
    require_exists(raw, "data file of '" + path.string() + "'");
    available = std::filesystem::file_size(raw);
  } else {
    return;  // slice lists: left to ITK
  }
  const uint64_t needed = compressed ? compressed_size : data_bytes;
  TF_CHECK(available >= needed, FormatError, "'", path.string(), "' is truncated: header promises ", needed,
           compressed ? " compressed" : "", " bytes of pixel data, found ", available);
}

}  // namespace

void check_data_size(const std::filesystem::path& path, uint64_t data_bytes) {
  if (has_suffix(path, ".nii")) {
    const uint64_t needed = nifti_vox_offset(path) + data_bytes;
    const uint64_t size = std::filesystem::file_size(path);
    TF_CHECK(size >= needed, FormatError, "'", path.string(), "' is truncated: ", size, " bytes, the header needs ",
             needed);
  } else if (has_suffix(path, ".nii.gz")) {
    const uint64_t needed = nifti_vox_offset(path) + data_bytes;
    const uint32_t trailer = gzip_trailer_size(path);
    TF_CHECK(trailer == uint32_t(needed & 0xffffffffu), FormatError, "'", path.string(),
             "' is truncated or its gzip stream is corrupt: it decompresses to ", trailer, " bytes (mod 2^32), the "
             "header needs ", needed);
  } else if (has_suffix(path, ".mha") || has_suffix(path, ".mhd")) {
    check_metaimage(path, data_bytes);
  }
}

}  // namespace teachformer::io::detail
