// The ITK boundary: every ITK include of the project lives in src/io/itk_*.cpp.
#include <itkImageIOBase.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <itkOutputWindow.h>
#include <itkVersion.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/io/dicom.hpp"
#include "io/detail/file_checks.hpp"

namespace teachformer::io {
namespace {

using IOComponent = itk::IOComponentEnum;

void quiet_itk() {
  static std::once_flag once;
  std::call_once(once, [] { itk::OutputWindow::SetGlobalWarningDisplay(false); });
}

itk::ImageIOBase::Pointer make_io(const fs::path& path) {
  quiet_itk();
  const std::string ext = image_extension(path);
  TF_CHECK(!ext.empty(), IoError, "'", path.string(), "': unsupported image extension; expected one of ",
           supported_image_extensions());
  if (ext == ".nii" || ext == ".nii.gz") return itk::NiftiImageIO::New().GetPointer();
  if (ext == ".mha" || ext == ".mhd") return itk::MetaImageIO::New().GetPointer();
  return itk::NrrdImageIO::New().GetPointer();
}

PixelType from_itk(IOComponent c, const std::string& path) {
  switch (c) {
    case IOComponent::UCHAR: return PixelType::UInt8;
    case IOComponent::CHAR: return PixelType::Int8;
    case IOComponent::USHORT: return PixelType::UInt16;
    case IOComponent::SHORT: return PixelType::Int16;
    case IOComponent::UINT: return PixelType::UInt32;
    case IOComponent::INT: return PixelType::Int32;
    case IOComponent::ULONG:
    case IOComponent::ULONGLONG: return PixelType::UInt64;
    case IOComponent::LONG:
    case IOComponent::LONGLONG: return PixelType::Int64;
    case IOComponent::FLOAT: return PixelType::Float32;
    case IOComponent::DOUBLE: return PixelType::Float64;
    default: break;
  }
  TF_THROW(FormatError, "'", path, "': unsupported pixel component type '",
           itk::ImageIOBase::GetComponentTypeAsString(c), "'; expected an integer or floating-point scalar type");
}

IOComponent to_itk(PixelType t) {
  switch (t) {
    case PixelType::UInt8: return IOComponent::UCHAR;
    case PixelType::Int8: return IOComponent::CHAR;
    case PixelType::UInt16: return IOComponent::USHORT;
    case PixelType::Int16: return IOComponent::SHORT;
    case PixelType::UInt32: return IOComponent::UINT;
    case PixelType::Int32: return IOComponent::INT;
    case PixelType::UInt64: return IOComponent::ULONGLONG;
    case PixelType::Int64: return IOComponent::LONGLONG;
    case PixelType::Float32: return IOComponent::FLOAT;
    case PixelType::Float64: return IOComponent::DOUBLE;
  }
  return IOComponent::FLOAT;
}

int64_t bytes_of(PixelType t) {
  switch (t) {
    case PixelType::UInt8:
    case PixelType::Int8: return 1;
    case PixelType::UInt16:
    case PixelType::Int16: return 2;
    case PixelType::UInt32:
    case PixelType::Int32:
    case PixelType::Float32: return 4;
    default: return 8;
  }
}

struct Header {
  ImageInfo info;
  int64_t components = 1;
  int64_t frames = 1;  // 4th dimension
};

Header read_header(itk::ImageIOBase* io, const fs::path& path, const ReadLimits& limits) {
  const std::string p = path.string();
  require_exists(path, "image");
  TF_CHECK(fs::is_regular_file(path), IoError, "'", p, "' is not a regular file");
  detail::check_header(path);
  io->SetFileName(p);
  try {
    TF_CHECK(io->CanReadFile(p.c_str()), FormatError, "'", p, "' cannot be read as ", image_extension(path),
             " (corrupt or not an image of that format)");
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& e) {
    TF_THROW(FormatError, "'", p, "': cannot read the image header: ", e.GetDescription());
  }
  Header h;
  const unsigned dims = io->GetNumberOfDimensions();
  TF_CHECK(dims >= 2 && dims <= 4, FormatError, "'", p, "' has ", dims, " dimensions; expected 2, 3 or 4");
  TF_CHECK(io->GetPixelType() == itk::IOPixelEnum::SCALAR || io->GetPixelType() == itk::IOPixelEnum::VECTOR,
           FormatError, "'", p, "': unsupported pixel type '", itk::ImageIOBase::GetPixelTypeAsString(io->GetPixelType()),
           "'; expected scalar or vector pixels");
  h.info.pixel_type = from_itk(io->GetComponentType(), p);
  h.info.dimensions = static_cast<int>(dims);
  h.components = io->GetNumberOfComponents();
  for (unsigned a = 0; a < dims; ++a) {
    const auto n = static_cast<int64_t>(io->GetDimensions(a));
    TF_CHECK(n >= 1 && n <= limits.max_dim, FormatError, "'", p, "': dimension ", a, " has size ", n,
             "; expected 1 to ", limits.max_dim, " (corrupt header?)");
    if (a < 3) h.info.size[a] = n;
    else h.frames = n;
  }
  TF_CHECK(h.components >= 1 && (h.components == 1 || h.frames == 1), FormatError, "'", p,
           "': 4D images with vector pixels are not supported");
  h.info.channels = h.components * h.frames;
  const double bytes = double(h.info.size[0]) * double(h.info.size[1]) * double(h.info.size[2]) *
                       double(h.info.channels) * double(bytes_of(h.info.pixel_type));
  TF_CHECK(bytes <= double(limits.max_bytes), FormatError, "'", p, "': header declares ", h.info.size, " x ",
           h.info.channels, " voxels of ", to_string(h.info.pixel_type), " (", bytes / double(1 << 30),
           " GiB), above the limit of ", double(limits.max_bytes) / double(1 << 30), " GiB (corrupt header?)");
  for (unsigned a = 0; a < std::min(dims, 3u); ++a) {
    h.info.geometry.spacing[a] = io->GetSpacing(a);
    h.info.geometry.origin[a] = io->GetOrigin(a);
    TF_CHECK(std::isfinite(h.info.geometry.spacing[a]) && h.info.geometry.spacing[a] > 0, FormatError, "'", p,
             "': spacing along axis ", a, " is ", h.info.geometry.spacing[a], "; expected a positive number");
    const auto column = io->GetDirection(a);
    for (unsigned r = 0; r < std::min(dims, 3u); ++r) h.info.geometry.direction[r * 3 + a] = column[r];
  }
  if (dims == 2) {
    h.info.geometry.direction[8] = 1.0;
    h.info.geometry.direction[2] = h.info.geometry.direction[5] = h.info.geometry.direction[6] =
        h.info.geometry.direction[7] = 0.0;
  }
  return h;
}

template <typename Src, typename Dst>
void convert_buffer(const void* src, Dst* dst, int64_t n) {
  const Src* s = static_cast<const Src*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(s[i]);
}

// Converts a raw ITK buffer of `type` into float32.
void to_float(PixelType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case PixelType::UInt8: convert_buffer<uint8_t>(src, dst, n); break;
    case PixelType::Int8: convert_buffer<int8_t>(src, dst, n); break;
    case PixelType::UInt16: convert_buffer<uint16_t>(src, dst, n); break;
    case PixelType::Int16: convert_buffer<int16_t>(src, dst, n); break;
    case PixelType::UInt32: convert_buffer<uint32_t>(src, dst, n); break;
    case PixelType::Int32: convert_buffer<int32_t>(src, dst, n); break;
    case PixelType::UInt64: convert_buffer<uint64_t>(src, dst, n); break;
    case PixelType::Int64: convert_buffer<int64_t>(src, dst, n); break;
    case PixelType::Float32: std::memcpy(dst, src, size_t(n) * sizeof(float)); break;
    case PixelType::Float64: convert_buffer<double>(src, dst, n); break;
  }
}

// Reads the pixel data as float32 [C, Z, Y, X].
Volume read_float(const fs::path& path, const ReadLimits& limits) {
  auto io = make_io(path);
  const Header h = read_header(io.GetPointer(), path, limits);
  const int64_t nvox = h.info.size[0] * h.info.size[1] * h.info.size[2];
  const int64_t n = nvox * h.info.channels;
  detail::check_data_size(path, uint64_t(n) * uint64_t(bytes_of(h.info.pixel_type)));
  auto out = at::empty({n}, at::kFloat);
  const unsigned dims = io->GetNumberOfDimensions();
  itk::ImageIORegion region(dims);
  for (unsigned a = 0; a < dims; ++a) {
    region.SetIndex(a, 0);
    region.SetSize(a, io->GetDimensions(a));
  }
  io->SetIORegion(region);
  try {
    if (h.info.pixel_type == PixelType::Float32) {
      io->Read(out.data_ptr<float>());
    } else {
      std::vector<char> raw(size_t(n * bytes_of(h.info.pixel_type)));
      io->Read(raw.data());
      to_float(h.info.pixel_type, raw.data(), out.data_ptr<float>(), n);
    }
  } catch (const itk::ExceptionObject& e) {
    TF_THROW(FormatError, "'", path.string(), "': cannot read the pixel data (truncated or corrupt file?): ",
             e.GetDescription());
  }
  Volume v;
  v.geometry = h.info.geometry;
  if (h.components > 1) {
    // Vector pixels are interleaved: [Z, Y, X, C] -> [C, Z, Y, X].
    v.data = out.view({h.info.size[2], h.info.size[1], h.info.size[0], h.components}).permute({3, 0, 1, 2}).contiguous();
  } else {
    v.data = out.view({h.frames, h.info.size[2], h.info.size[1], h.info.size[0]});
  }
  return v;
}

template <typename Dst>
void from_float(const float* src, void* dst_raw, int64_t n) {
  Dst* dst = static_cast<Dst*>(dst_raw);
  if constexpr (std::is_floating_point_v<Dst>) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
  } else {
    const double lo = double(std::numeric_limits<Dst>::lowest());
    const double hi = double(std::numeric_limits<Dst>::max());
    for (int64_t i = 0; i < n; ++i) {
      const double v = std::nearbyint(double(src[i]));
      dst[i] = static_cast<Dst>(std::isnan(v) ? 0.0 : std::clamp(v, lo, hi));
    }
  }
}

void write_impl(const fs::path& path, const Volume& volume, PixelType type) {
  const std::string p = path.string();
  TF_CHECK(volume.data.defined() && volume.data.dim() == 4, InvalidArgument, "writing '", p,
           "': volume must be [C, Z, Y, X], got ", volume.data.defined() ? volume.data.sizes().vec() : std::vector<int64_t>{});
  const auto data = volume.data.detach().to(at::kCPU).to(at::kFloat).contiguous();
  const int64_t c = data.size(0);
  const int64_t n = data.numel();
  std::vector<char> raw(size_t(n * bytes_of(type)));
  const float* src = data.data_ptr<float>();
  switch (type) {
    case PixelType::UInt8: from_float<uint8_t>(src, raw.data(), n); break;
    case PixelType::Int8: from_float<int8_t>(src, raw.data(), n); break;
    case PixelType::UInt16: from_float<uint16_t>(src, raw.data(), n); break;
    case PixelType::Int16: from_float<int16_t>(src, raw.data(), n); break;
    case PixelType::UInt32: from_float<uint32_t>(src, raw.data(), n); break;
    case PixelType::Int32: from_float<int32_t>(src, raw.data(), n); break;
    case PixelType::UInt64: from_float<uint64_t>(src, raw.data(), n); break;
    case PixelType::Int64: from_float<int64_t>(src, raw.data(), n); break;
    case PixelType::Float32: std::memcpy(raw.data(), src, size_t(n) * 4); break;
    case PixelType::Float64: from_float<double>(src, raw.data(), n); break;
  }
  const std::string ext = image_extension(path);
  auto write_to = [&](const fs::path& target) {
    auto io = make_io(path);
    const unsigned dims = c > 1 ? 4 : 3;
    io->SetNumberOfDimensions(dims);
    io->SetPixelType(itk::IOPixelEnum::SCALAR);
    io->SetComponentType(to_itk(type));
    io->SetNumberOfComponents(1);
    const Size3 size = volume.size();
    for (unsigned a = 0; a < dims; ++a) {
      io->SetDimensions(a, static_cast<itk::SizeValueType>(a < 3 ? size[a] : c));
      io->SetSpacing(a, a < 3 ? volume.geometry.spacing[a] : 1.0);
      io->SetOrigin(a, a < 3 ? volume.geometry.origin[a] : 0.0);
      std::vector<double> column(dims, 0.0);
      for (unsigned r = 0; r < dims; ++r)
        column[r] = (a < 3 && r < 3) ? volume.geometry.direction[r * 3 + a] : (r == a ? 1.0 : 0.0);
      io->SetDirection(a, column);
    }
    io->SetUseCompression(ext == ".nii.gz" || ext == ".mha" || ext == ".nrrd");
    io->SetFileName(target.string());
    itk::ImageIORegion region(dims);
    for (unsigned a = 0; a < dims; ++a) {
      region.SetIndex(a, 0);
      region.SetSize(a, a < 3 ? size[a] : c);
    }
    io->SetIORegion(region);
    try {
      io->WriteImageInformation();
      io->Write(raw.data());
    } catch (const itk::ExceptionObject& e) {
      TF_THROW(IoError, "cannot write '", p, "': ", e.GetDescription());
    }
  };
  if (ext == ".mhd" || ext == ".nhdr") {
    // Header + detached data file: write both into a temporary folder, then move the data file first and the
    // header last, so a reader never sees a header without its data.
    const fs::path tmp_dir = temporary_sibling(path);
    std::error_code ec;
    fs::create_directories(tmp_dir, ec);
    TF_CHECK(!ec, IoError, "cannot create '", tmp_dir.string(), "': ", ec.message());
    try {
      write_to(tmp_dir / path.filename());
      for (const auto& entry : fs::directory_iterator(tmp_dir)) {
        if (entry.path().filename() == path.filename()) continue;
        fs::rename(entry.path(), path.parent_path() / entry.path().filename());
      }
      fs::rename(tmp_dir / path.filename(), path);
      fs::remove_all(tmp_dir, ec);
    } catch (...) {
      fs::remove_all(tmp_dir, ec);
      throw;
    }
    return;
  }
  write_atomically(path, write_to);
}

}  // namespace

std::string itk_version() { return itk::Version::GetITKVersion(); }

ImageInfo read_image_info(const fs::path& path, const ReadLimits& limits) {
  if (fs::is_directory(path)) return dicom_image_info(path);
  auto io = make_io(path);
  return read_header(io.GetPointer(), path, limits).info;
}

Volume read_image(const fs::path& path, const ReadLimits& limits) {
  if (fs::is_directory(path)) return read_dicom_series(path);
  return read_float(path, limits);
}

Volume read_label(const fs::path& path, const ReadLimits& limits) {
  Volume v = read_float(path, limits);
  TF_CHECK(v.channels() == 1, FormatError, "'", path.string(), "': a label map must have one channel, found ",
           v.channels());
  const auto lo = v.data.min().item<float>();
  const auto hi = v.data.max().item<float>();
  TF_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo >= 0 && hi <= 255, FormatError, "'", path.string(),
           "': label values must be integers in [0, 255], found range [", lo, ", ", hi, "]");
  TF_CHECK(at::equal(v.data, v.data.round()), FormatError, "'", path.string(),
           "': label values must be integers, found fractional values");
  v.data = v.data.to(at::kByte);
  return v;
}

void write_image(const fs::path& path, const Volume& volume, PixelType pixel_type) {
  write_impl(path, volume, pixel_type);
}

void write_label(const fs::path& path, const Volume& labels) {
  TF_CHECK(labels.data.defined() && labels.data.dim() == 4 && labels.data.size(0) == 1, InvalidArgument,
           "writing label '", path.string(), "': expected [1, Z, Y, X]");
  write_impl(path, labels, PixelType::UInt8);
}

}  // namespace teachformer::io
