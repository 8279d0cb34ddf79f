#include "io/detail/file_checks.hpp"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <cmath>
#include <string>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"

namespace teachformer::io::detail {
namespace {

// The fields of a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header that the checks need, in native byte order.
struct NiftiHeader {
  int version = 1;
  int64_t dim[8] = {};
  double pixdim[8] = {};
  double vox_offset = 0;
  int qform_code = 0, sform_code = 0;
  double quatern[3] = {}, qoffset[3] = {};
  double srow[12] = {};
};

template <typename T>
T field(const unsigned char* hdr, size_t offset, bool swap) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, hdr + offset, sizeof(T));
  if (swap) std::reverse(b, b + sizeof(T));
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

NiftiHeader read_nifti_header(const std::filesystem::path& path) {
  const std::string p = path.string();
  gzFile f = gzopen(path.c_str(), "rb");
  TF_CHECK(f, IoError, "cannot open '", p, "'");
  unsigned char hdr[540];
  const int n = gzread(f, hdr, sizeof hdr);
  gzclose(f);
  TF_CHECK(n >= 348, FormatError, "'", p, "' is truncated: a NIfTI header needs 348 bytes, found ", std::max(n, 0));
  const auto size = field<int32_t>(hdr, 0, false);
  const auto swapped = field<int32_t>(hdr, 0, true);
  NiftiHeader h;
  bool swap = false;
  if (size == 348 || swapped == 348) {
    swap = size != 348;
    for (int i = 0; i < 8; ++i) {
      h.dim[i] = field<int16_t>(hdr, 40 + 2 * size_t(i), swap);
      h.pixdim[i] = field<float>(hdr, 76 + 4 * size_t(i), swap);
    }
    h.vox_offset = field<float>(hdr, 108, swap);
    h.qform_code = field<int16_t>(hdr, 252, swap);
    h.sform_code = field<int16_t>(hdr, 254, swap);
    for (int i = 0; i < 3; ++i) {
      h.quatern[i] = field<float>(hdr, 256 + 4 * size_t(i), swap);
      h.qoffset[i] = field<float>(hdr, 268 + 4 * size_t(i), swap);
    }
    for (int i = 0; i < 12; ++i) h.srow[i] = field<float>(hdr, 280 + 4 * size_t(i), swap);
    return h;
  }
  TF_CHECK(size == 540 || swapped == 540, FormatError, "'", p, "' is not a NIfTI file: the header size field is ",
           size, "; expected 348 (NIfTI-1) or 540 (NIfTI-2)");
  TF_CHECK(n >= 540, FormatError, "'", p, "' is truncated: a NIfTI-2 header needs 540 bytes, found ", n);
  swap = size != 540;
  h.version = 2;
  for (int i = 0; i < 8; ++i) {
    h.dim[i] = field<int64_t>(hdr, 16 + 8 * size_t(i), swap);
    h.pixdim[i] = field<double>(hdr, 104 + 8 * size_t(i), swap);
  }
  h.vox_offset = double(field<int64_t>(hdr, 168, swap));
  h.qform_code = field<int32_t>(hdr, 344, swap);
  h.sform_code = field<int32_t>(hdr, 348, swap);
  for (int i = 0; i < 3; ++i) {
    h.quatern[i] = field<double>(hdr, 352 + 8 * size_t(i), swap);
    h.qoffset[i] = field<double>(hdr, 376 + 8 * size_t(i), swap);
  }
  for (int i = 0; i < 12; ++i) h.srow[i] = field<double>(hdr, 400 + 8 * size_t(i), swap);
  return h;
}

// Where the pixel data starts; a vox_offset below the header means "right after it", as nifti1_io reads it.
uint64_t nifti_vox_offset(const NiftiHeader& h) {
  const double header_end = h.version == 2 ? 544 : 352;
  return uint64_t(std::max(h.vox_offset, header_end));
}

void check_nifti_header(const std::filesystem::path& path) {
  const std::string p = path.string();
  const NiftiHeader h = read_nifti_header(path);
  TF_CHECK(h.dim[0] >= 1 && h.dim[0] <= 7, FormatError, "'", p, "': NIfTI dim[0] (the number of dimensions) is ",
           h.dim[0], "; expected 1 to 7");
  for (int64_t i = 1; i <= h.dim[0]; ++i) {
    TF_CHECK(h.dim[i] >= 1 && h.dim[i] <= std::numeric_limits<int32_t>::max(), FormatError, "'", p, "': NIfTI dim[",
             i, "] is ", h.dim[i], "; expected a positive size");
    TF_CHECK(std::isfinite(h.pixdim[i]), FormatError, "'", p, "': NIfTI pixdim[", i, "] (voxel spacing) is ",
             h.pixdim[i], "; expected a finite number");
  }
  // The data must start inside the file: beyond it ITK would read nothing it can report.
  const uint64_t limit = has_suffix(path, ".nii") ? std::filesystem::file_size(path) : uint64_t(1) << 40;
  TF_CHECK(std::isfinite(h.vox_offset) && h.vox_offset >= 0 && h.vox_offset <= double(limit), FormatError, "'", p,
           "': NIfTI vox_offset is ", h.vox_offset, "; expected a byte offset within the file (",
           has_suffix(path, ".nii") ? std::to_string(limit) + " bytes" : std::string("at most 2^40"), ")");
  // ITK takes an SVD of the direction part; values near the float limits make it run for ever (no real scan has
  // a coordinate beyond 1e6 mm or a non-zero term below 1e-20).
  const auto plausible = [](double v) { return std::isfinite(v) && std::abs(v) <= 1e6 && (v == 0 || std::abs(v) >= 1e-20); };
  if (h.qform_code > 0)
    for (int i = 0; i < 3; ++i)
      TF_CHECK(plausible(h.quatern[i]) && plausible(h.qoffset[i]), FormatError, "'", p,
               "': NIfTI qform (quaternion and offset, the direction and origin) holds a non-finite or implausible "
               "number (expected |v| <= 1e6 mm)");
  if (h.sform_code > 0)
    for (double v : h.srow)
      TF_CHECK(plausible(v), FormatError, "'", p,
               "': NIfTI sform (srow_x/y/z, the direction and origin) holds a non-finite or implausible number "
               "(expected |v| <= 1e6 mm)");
}

// The last 4 bytes of a gzip member hold the uncompressed size modulo 2^32.
uint32_t gzip_trailer_size(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(-4, std::ios::end);
  unsigned char b[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(b), 4);
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

void check_metaimage(const std::filesystem::path& path, uint64_t data_bytes) {
  const std::string p = path.string();
  std::ifstream in(path, std::ios::binary);
  TF_CHECK(in.good(), IoError, "cannot open '", p, "'");
  bool compressed = false;
  uint64_t compressed_size = 0;
  std::string line, data_file;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq));
    const std::string value = trim(line.substr(eq + 1));
    if (key == "CompressedData") compressed = value == "True" || value == "true";
    if (key == "CompressedDataSize") {
      const bool digits = !value.empty() && value.size() <= 19 && value.find_first_not_of("0123456789") == std::string::npos;
      TF_CHECK(digits, FormatError, "'", p, "': CompressedDataSize is '", value, "'; expected a byte count");
      compressed_size = std::stoull(value);
    }
    if (key == "ElementDataFile") {
      data_file = value;
      break;
    }
  }
  if (data_file.empty()) return;  // let ITK report the malformed header
  uint64_t available = 0;
  if (data_file == "LOCAL") {
    // Data after the ElementDataFile line; none when that line ended the file.
    const auto pos = in.eof() ? std::streamoff(-1) : std::streamoff(in.tellg());
    const uint64_t size = std::filesystem::file_size(path);
    available = pos < 0 || uint64_t(pos) > size ? 0 : size - uint64_t(pos);
  } else {
    // The name was checked with the header (check_text_header): one file inside the header's folder.
    const auto raw = path.parent_path() / data_file;
    std::error_code ec;
    TF_CHECK(std::filesystem::is_regular_file(raw, ec), IoError, "data file '", raw.string(), "' of '", p,
             "' does not exist or is not a file");
    available = std::filesystem::file_size(raw);
  }
  const uint64_t needed = compressed ? compressed_size : data_bytes;
  TF_CHECK(available >= needed, FormatError, "'", p, "' is truncated: header promises ", needed,
           compressed ? " compressed" : "", " bytes of pixel data, found ", available);
}

}  // namespace

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  s.erase(s.find_last_not_of(" \t\r") + 1);
  return s;
}

void check_header(const std::filesystem::path& path) {
  if (has_suffix(path, ".nii") || has_suffix(path, ".nii.gz")) check_nifti_header(path);
  else check_text_header(path);
}

void check_data_size(const std::filesystem::path& path, uint64_t data_bytes) {
  if (has_suffix(path, ".nii")) {
    const uint64_t needed = nifti_vox_offset(read_nifti_header(path)) + data_bytes;
    const uint64_t size = std::filesystem::file_size(path);
    TF_CHECK(size >= needed, FormatError, "'", path.string(), "' is truncated: ", size, " bytes, the header needs ",
             needed);
  } else if (has_suffix(path, ".nii.gz")) {
    const uint64_t needed = nifti_vox_offset(read_nifti_header(path)) + data_bytes;
    const uint32_t trailer = gzip_trailer_size(path);
    TF_CHECK(trailer == uint32_t(needed & 0xffffffffu), FormatError, "'", path.string(),
             "' is truncated or its gzip stream is corrupt: it decompresses to ", trailer, " bytes (mod 2^32), the "
             "header needs ", needed);
  } else if (has_suffix(path, ".mha") || has_suffix(path, ".mhd")) {
    check_metaimage(path, data_bytes);
  } else if (has_suffix(path, ".nrrd") || has_suffix(path, ".nhdr")) {
    check_nrrd_data_size(path, data_bytes);
  }
}

}  // namespace teachformer::io::detail
