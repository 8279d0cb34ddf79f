#include "data/detail/nifti_scan.hpp"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"

namespace teachformer::data::detail {
namespace {

template <typename T>
T load(const unsigned char* p, bool swap) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (swap)
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

struct GzCloser {
  gzFile f;
  ~GzCloser() {
    if (f) gzclose(f);
  }
};

}  // namespace

std::optional<NonFinite> count_nonfinite_nifti(const std::filesystem::path& path) {
  if (!has_suffix(path, ".nii") && !has_suffix(path, ".nii.gz")) return std::nullopt;
  GzCloser in{gzopen(path.c_str(), "rb")};  // reads plain files too
  TF_CHECK(in.f, IoError, "cannot open '", path.string(), "'");
  unsigned char hdr[540];
  const int got = gzread(in.f, hdr, sizeof hdr);
  if (got < 348) return std::nullopt;  // io reports the truncated header
  int version = 0;
  bool swap = false;
  for (bool s : {false, true}) {
    const int32_t n = load<int32_t>(hdr, s);
    if (n == 348 || (n == 540 && got >= 540)) {
      version = n == 348 ? 1 : 2;
      swap = s;
      break;
    }
  }
  if (version == 0) return std::nullopt;
  int16_t datatype;
  uint64_t offset, voxels = 1;
  if (version == 1) {
    datatype = load<int16_t>(hdr + 70, swap);
    const int16_t ndim = load<int16_t>(hdr + 40, swap);
    for (int d = 1; d <= std::min<int>(ndim, 7); ++d) voxels *= uint64_t(std::max<int16_t>(1, load<int16_t>(hdr + 40 + 2 * d, swap)));
    offset = uint64_t(std::max(352.0f, load<float>(hdr + 108, swap)));
  } else {
    datatype = load<int16_t>(hdr + 12, swap);
    const int64_t ndim = load<int64_t>(hdr + 16, swap);
    for (int d = 1; d <= std::min<int64_t>(ndim, 7); ++d) voxels *= uint64_t(std::max<int64_t>(1, load<int64_t>(hdr + 16 + 8 * d, swap)));
    offset = uint64_t(std::max<int64_t>(544, load<int64_t>(hdr + 168, swap)));
  }
  const int width = datatype == 16 ? 4 : datatype == 64 ? 8 : 0;  // DT_FLOAT32, DT_FLOAT64
  if (width == 0) return std::nullopt;
  TF_CHECK(gzseek(in.f, z_off_t(offset), SEEK_SET) == z_off_t(offset), FormatError, "'", path.string(),
           "' is truncated before its voxel data");
  NonFinite count;
  std::vector<unsigned char> buf(size_t(1) << 20);
  uint64_t remaining = voxels * uint64_t(width);
  while (remaining > 0) {
    const unsigned chunk = unsigned(std::min<uint64_t>(remaining, buf.size()));
    const int n = gzread(in.f, buf.data(), chunk);
    TF_CHECK(n == int(chunk), FormatError, "'", path.string(), "' is truncated: the header declares ", voxels,
             " voxels of ", width, " bytes");
    for (unsigned i = 0; i < chunk; i += unsigned(width)) {
      const double v = width == 4 ? double(load<float>(buf.data() + i, swap)) : load<double>(buf.data() + i, swap);
      if (std::isnan(v)) ++count.nan;
      else if (std::isinf(v)) ++count.inf;
    }
    remaining -= chunk;
  }
  return count;
}

}  // namespace teachformer::data::detail
