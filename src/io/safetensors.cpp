#include "teachformer/io/safetensors.hpp"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"

namespace teachformer::io {
namespace {

// A header larger than this is treated as corrupt rather than allocated.
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// More elements than this in one tensor (or in one dimension) is a corrupt shape.
constexpr uint64_t kMaxElements = uint64_t(1) << 60;

struct DtypeEntry {
  const char* name;
  torch::ScalarType type;
  int64_t bytes;
};
constexpr DtypeEntry kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},    {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}
const DtypeEntry* find_dtype(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

struct ParsedHeader {
  uint64_t header_bytes = 0;
  uint64_t data_bytes = 0;
  nlohmann::json json;
};

ParsedHeader parse_header(std::istream& in, const std::filesystem::path& path) {
  const std::string p = path.string();
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  TF_CHECK(file_size >= 8, FormatError, "'", p, "' is not a safetensors file: ", file_size,
           " bytes, expected at least the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  TF_CHECK(n <= kMaxHeaderBytes && n <= file_size - 8, FormatError, "'", p,
           "' is not a valid safetensors file: header length ", n, " exceeds the file (", file_size, " bytes)");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  TF_CHECK(in.good(), IoError, "'", p, "': cannot read the safetensors header");
  ParsedHeader h;
  h.header_bytes = n;
  h.data_bytes = file_size - 8 - n;
  try {
    h.json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TF_THROW(FormatError, "'", p, "' is not a valid safetensors file: header is not JSON (", e.what(), ")");
  }
  TF_CHECK(h.json.is_object(), FormatError, "'", p, "': safetensors header must be a JSON object");
  return h;
}

struct EntryInfo {
  const DtypeEntry* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

EntryInfo check_entry(const std::string& p, const std::string& name, const nlohmann::json& e, uint64_t data_bytes) {
  TF_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), FormatError,
           "'", p, "': tensor '", name, "' needs dtype, shape and data_offsets");
  TF_CHECK(e["dtype"].is_string(), FormatError, "'", p, "': tensor '", name, "' dtype must be a string");
  const auto* dt = find_dtype(e["dtype"].get<std::string>());
  TF_CHECK(dt, FormatError, "'", p, "': tensor '", name, "' has unsupported dtype ", e["dtype"].dump(),
           " (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  TF_CHECK(e["shape"].is_array(), FormatError, "'", p, "': tensor '", name, "' shape must be a list");
  EntryInfo info{dt, {}, 0, 0};
  // Every dimension, and the product of the non-zero ones, must stay below kMaxElements and within the data: a
  // zero dimension must not hide a huge one behind it (torch would overflow computing strides and sizes).
  uint64_t numel = 1, nonzero_numel = 1;
  for (const auto& d : e["shape"]) {
    TF_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), FormatError, "'", p,
             "': tensor '", name, "' has a negative or non-integer dimension in shape ", e["shape"].dump());
    const auto v = d.get<uint64_t>();
    TF_CHECK(v <= kMaxElements && (v == 0 || nonzero_numel <= kMaxElements / v), FormatError, "'", p,
             "': tensor '", name, "' shape ", e["shape"].dump(), " has more than 2^60 elements");
    TF_CHECK(v == 0 || numel <= data_bytes / v, FormatError, "'", p, "': tensor '", name, "' shape ",
             e["shape"].dump(), " is larger than the file's data (", data_bytes, " bytes)");
    numel *= v;
    if (v != 0) nonzero_numel *= v;
    info.shape.push_back(static_cast<int64_t>(v));
  }
  const auto& off = e["data_offsets"];
  TF_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
           FormatError, "'", p, "': tensor '", name, "' data_offsets must be [begin, end]");
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  TF_CHECK(info.begin <= info.end && info.end <= data_bytes, FormatError, "'", p, "': tensor '", name,
           "' data_offsets [", info.begin, ", ", info.end, "] lie outside the data section (", data_bytes,
           " bytes; file truncated?)");
  const uint64_t expected = numel * static_cast<uint64_t>(dt->bytes);
  TF_CHECK(info.end - info.begin == expected, FormatError, "'", p, "': tensor '", name, "' has ", info.end - info.begin,
           " bytes but dtype ", dt->name, " and shape ", e["shape"].dump(), " need ", expected);
  return info;
}

// Whole-file gunzip; errors name the path (corrupt or truncated streams included).
std::string gunzip_file(const std::filesystem::path& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  TF_CHECK(f, IoError, "cannot open '", path.string(), "' for reading");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  int err = 0;
  const char* msg = gzerror(f, &err);
  const bool ok = n == 0 && (err == Z_OK || err == Z_STREAM_END);
  const std::string why = msg ? msg : "";
  gzclose(f);
  TF_CHECK(ok, FormatError, "'", path.string(), "' is not a valid gzip stream (truncated or corrupt): ", why);
  return out;
}

SafeTensors read_stream(std::istream& in, const std::filesystem::path& path, bool with_data) {
  const std::string p = path.string();
  const ParsedHeader h = parse_header(in, path);
  SafeTensors out;
  const uint64_t data_start = 8 + h.header_bytes;
  for (auto it = h.json.begin(); it != h.json.end(); ++it) {
    if (it.key() == "__metadata__") {
      TF_CHECK(it->is_object(), FormatError, "'", p, "': __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        TF_CHECK(m->is_string(), FormatError, "'", p, "': __metadata__ value '", m.key(), "' must be a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const EntryInfo info = check_entry(p, it.key(), *it, h.data_bytes);
    if (!with_data) {
      // Header-only: a zero-stride view keeps dtype and shape without allocating the data.
      out.tensors[it.key()] = torch::zeros({}, info.dtype->type).expand(info.shape);
      continue;
    }
    auto t = torch::empty(info.shape, torch::TensorOptions(info.dtype->type));
    const uint64_t n = info.end - info.begin;
    if (n > 0) {
      in.seekg(static_cast<std::streamoff>(data_start + info.begin));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(n));
      TF_CHECK(in.good(), IoError, "'", p, "': cannot read the data of tensor '", it.key(), "'");
    }
    out.tensors[it.key()] = std::move(t);
  }
  return out;
}

SafeTensors read_impl(const std::filesystem::path& path, bool with_data) {
  require_exists(path, "safetensors file");
  if (has_suffix(path, ".gz")) {
    std::istringstream in(gunzip_file(path), std::ios::binary);
    return read_stream(in, path, with_data);
  }
  std::ifstream in(path, std::ios::binary);
  TF_CHECK(in.good(), IoError, "cannot open '", path.string(), "' for reading");
  return read_stream(in, path, with_data);
}

}  // namespace

const torch::Tensor& SafeTensors::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::vector<std::string> names;
    for (const auto& kv : tensors) names.push_back(kv.first);
    if (names.size() > 20) names.resize(20), names.push_back("...");
    TF_THROW(InvalidArgument, "no tensor named '", name, "'; available: ", names);
  }
  return it->second;
}

SafeTensors read_safetensors(const std::filesystem::path& path) { return read_impl(path, true); }
SafeTensors read_safetensors_header(const std::filesystem::path& path) { return read_impl(path, false); }

void write_safetensors(const std::filesystem::path& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    TF_CHECK(name != "__metadata__", InvalidArgument, "'", path.string(), "': '__metadata__' is not a tensor name");
    TF_CHECK(tensor.defined(), InvalidArgument, "'", path.string(), "': tensor '", name, "' is undefined");
    const auto* dt = find_dtype(tensor.scalar_type());
    TF_CHECK(dt, InvalidArgument, "'", path.string(), "': tensor '", name, "' has dtype ", tensor.scalar_type(),
             " which safetensors cannot store here");
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(t.numel()) * dt->bytes;
    header[name] = {{"dtype", dt->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(std::move(t));
  }
  std::string text = header.dump();
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  auto emit = [&](auto&& write_bytes) {
    uint64_t n = text.size();
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    write_bytes(reinterpret_cast<const char*>(len_bytes), size_t(8));
    write_bytes(text.data(), text.size());
    for (const auto& t : data) write_bytes(static_cast<const char*>(t.data_ptr()), size_t(t.numel() * t.element_size()));
  };
  if (has_suffix(path, ".gz")) {
    write_atomically(path, [&](const std::filesystem::path& tmp) {
      gzFile f = gzopen(tmp.c_str(), "wb6");
      TF_CHECK(f, IoError, "cannot open '", tmp.string(), "' for writing");
      bool ok = true;
      emit([&](const char* bytes, size_t len) {
        while (ok && len > 0) {
          const unsigned chunk = unsigned(std::min<size_t>(len, 1u << 30));
          ok = gzwrite(f, bytes, chunk) == int(chunk);
          bytes += chunk;
          len -= chunk;
        }
      });
      ok = (gzclose(f) == Z_OK) && ok;
      TF_CHECK(ok, IoError, "write to '", path.string(), "' failed (disk full?)");
    });
    return;
  }
  write_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TF_CHECK(out.good(), IoError, "cannot open '", tmp.string(), "' for writing");
    emit([&](const char* bytes, size_t len) { out.write(bytes, static_cast<std::streamsize>(len)); });
    out.flush();
    TF_CHECK(out.good(), IoError, "write to '", path.string(), "' failed (disk full?)");
  }, 8 + text.size() + offset);
}

}  // namespace teachformer::io
