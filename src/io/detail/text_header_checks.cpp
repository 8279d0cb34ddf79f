// MetaImage (.mha/.mhd) and NRRD (.nrrd/.nhdr) headers are checked here, before ITK's MetaIO and NrrdIO see them:
// both trust their header text (counts, sizes, names) and some malformed headers crash or hang them. The checks
// accept every header ITK, SimpleITK, 3D Slicer and MONAI write, and refuse the rest with one line naming the file.
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/detail/file_checks.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/strings.hpp"

namespace teachformer::io::detail {
namespace {

constexpr size_t kMaxHeaderBytes = size_t(1) << 20;  // far above any real header
constexpr int kMaxDims = 7;
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxSkip = int64_t(1) << 40;

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_int(const std::string& s, int64_t lo, int64_t hi, int64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

bool parse_number(const std::string& s, bool allow_nan, double& out) {
  if (s.empty() || s.size() > 64) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return false;
  if (!std::isfinite(v) && !(allow_nan && std::isnan(v))) return false;
  out = v;
  return true;
}

// One header, read as lines: the bytes before the data (or the whole file, up to kMaxHeaderBytes).
class HeaderText {
 public:
  HeaderText(const std::filesystem::path& path, const char* format) : path_(path.string()), format_(format) {
    in_.open(path, std::ios::binary);
    TF_CHECK(in_.good(), IoError, "cannot open '", path_, "'");
  }

  // The next line without its end; false at the end of the file.
  bool next(std::string& line) {
    line.clear();
    char c = 0;
    bool any = false;
    ++line_number_;
    while (in_.get(c)) {
      any = true;
      fail_if(++consumed_ > kMaxHeaderBytes, "the ", format_, " header is longer than ", kMaxHeaderBytes,
              " bytes (corrupt or not a ", format_, " file)");
      if (c == '\n') break;
      const auto u = static_cast<unsigned char>(c);
      fail_if(u < 0x20 && c != '\t' && c != '\r', "line ", line_number_, " of the ", format_,
              " header holds a control character (byte ", int(u), "); expected text");
      line += c;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return any;
  }

  // Bytes after the line just read; 0 when it ended the file.
  uint64_t bytes_after() {
    if (in_.eof()) return 0;
    const auto pos = in_.tellg();
    const uint64_t size = std::filesystem::file_size(path_);
    return pos < 0 || uint64_t(pos) > size ? 0 : size - uint64_t(pos);
  }

  int line_number() const { return line_number_; }

  template <typename... Args>
  void fail_if(bool bad, const Args&... args) const {
    TF_CHECK(!bad, FormatError, "'", path_, "': ", args...);
  }

 private:
  std::string path_;
  const char* format_;
  std::ifstream in_;
  size_t consumed_ = 0;
  int line_number_ = 0;
};

// A detached data file must be a single file beside the header or below it.
void check_data_file_name(const HeaderText& h, const std::string& key, const std::string& name) {
  h.fail_if(name.empty(), key, " is empty; expected the name of the data file");
  h.fail_if(name == "LIST" || name.find_first_of("%*") != std::string::npos ||
                name.find_first_of(" \t") != std::string::npos,
            key, " '", name, "' names several files; only a single data file is supported");
  const std::filesystem::path rel(name);
  bool inside = rel.is_relative();
  for (const auto& part : rel) inside = inside && part != "..";
  h.fail_if(!inside, key, " '", name, "' must name a file in the header's folder (no absolute path, no '..')");
}

// ---- MetaImage ----------------------------------------------------------------------------------------------

enum class MetaKind { Text, Bool, Int, Numbers, Matrix, Letters };

struct MetaKey {
  MetaKind kind;
  int64_t lo = 0, hi = 0;  // Int
};

const std::map<std::string, MetaKey>& meta_keys() {
  static const std::map<std::string, MetaKey> keys = {
      {"Comment", {MetaKind::Text}},          {"ObjectType", {MetaKind::Text}},
      {"ObjectSubType", {MetaKind::Text}},    {"TransformType", {MetaKind::Text}},
      {"Name", {MetaKind::Text}},             {"Modality", {MetaKind::Text}},
      {"DistanceUnits", {MetaKind::Text}},    {"AcquisitionDate", {MetaKind::Text}},
      {"ElementType", {MetaKind::Text}},      {"ElementDataFile", {MetaKind::Text}},
      {"NDims", {MetaKind::Int, 1, kMaxDims}},
      {"ID", {MetaKind::Int, -kMaxSize, kMaxSize}},
      {"ParentID", {MetaKind::Int, -kMaxSize, kMaxSize}},
      {"HeaderSize", {MetaKind::Int, -1, kMaxSkip}},
      {"CompressedDataSize", {MetaKind::Int, 0, int64_t(1) << 60}},
      {"ElementNumberOfChannels", {MetaKind::Int, 1, 1024}},
      {"BinaryData", {MetaKind::Bool}},       {"BinaryDataByteOrderMSB", {MetaKind::Bool}},
      {"ElementByteOrderMSB", {MetaKind::Bool}}, {"CompressedData", {MetaKind::Bool}},
      {"DimSize", {MetaKind::Numbers}},       {"ElementSpacing", {MetaKind::Numbers}},
      {"ElementSize", {MetaKind::Numbers}},   {"Offset", {MetaKind::Numbers}},
      {"Position", {MetaKind::Numbers}},      {"Origin", {MetaKind::Numbers}},
      {"CenterOfRotation", {MetaKind::Numbers}}, {"SequenceID", {MetaKind::Numbers}},
      {"ElementMin", {MetaKind::Numbers}},    {"ElementMax", {MetaKind::Numbers}},
      {"Color", {MetaKind::Numbers}},
      {"TransformMatrix", {MetaKind::Matrix}}, {"Rotation", {MetaKind::Matrix}},
      {"Orientation", {MetaKind::Matrix}},    {"AnatomicalOrientation", {MetaKind::Letters}},
  };
  return keys;
}

const std::set<std::string>& meta_element_types() {
  static const std::set<std::string> types = {"MET_CHAR",  "MET_UCHAR", "MET_SHORT",     "MET_USHORT",
                                              "MET_INT",   "MET_UINT",  "MET_LONG",      "MET_ULONG",
                                              "MET_LONG_LONG", "MET_ULONG_LONG", "MET_FLOAT", "MET_DOUBLE"};
  return types;
}

bool meta_key_name(const std::string& key) {
  if (key.empty() || key.size() > 256 || !std::isalpha(static_cast<unsigned char>(key[0]))) return false;
  for (const char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

// How many numbers a MetaImage key holds once NDims is known (0: any count from 1 to 64).
size_t meta_count(const std::string& key, int64_t ndims) {
  if (key == "DimSize" || key == "ElementSpacing" || key == "ElementSize" || key == "Offset" || key == "Position" ||
      key == "Origin" || key == "CenterOfRotation" || key == "SequenceID")
    return size_t(ndims);
  if (key == "Color") return 4;
  if (key == "ElementMin" || key == "ElementMax") return 1;
  return 0;
}

void check_metaimage_header(const std::filesystem::path& path) {
  HeaderText h(path, "MetaImage");
  std::set<std::string> seen;
  int64_t ndims = 0;
  std::string line, data_file;
  while (h.next(line)) {
    if (trim(line).empty()) continue;
    const auto eq = line.find('=');
    h.fail_if(eq == std::string::npos, "line ", h.line_number(),
              " of the MetaImage header is not 'Key = Value' (corrupt or not a MetaImage file)");
    const std::string key = trim(line.substr(0, eq));
    const std::string value = trim(line.substr(eq + 1));
    h.fail_if(!meta_key_name(key), "line ", h.line_number(), " of the MetaImage header has no valid key name");
    h.fail_if(!seen.insert(key).second, "the MetaImage key ", key, " appears twice");
    const auto known = meta_keys().find(key);
    if (known == meta_keys().end()) {
      // Extra keys (ITK's metadata dictionary, for one) are text that MetaIO keeps as strings.
      h.fail_if(value.size() > 65536, "the value of MetaImage key ", key, " is longer than 64 KiB");
      continue;
    }
    const MetaKey& k = known->second;
    const auto words = split_words(value);
    switch (k.kind) {
      case MetaKind::Text:
        h.fail_if(value.size() > 65536, "the value of MetaImage key ", key, " is longer than 64 KiB");
        break;
      case MetaKind::Bool: {
        const std::string v = lower(value);
        h.fail_if(v != "true" && v != "false" && v != "1" && v != "0", "MetaImage ", key, " is '", value,
                  "'; expected True or False");
        break;
      }
      case MetaKind::Int: {
        int64_t v = 0;
        h.fail_if(!parse_int(value, k.lo, k.hi, v), "MetaImage ", key, " is '", value.substr(0, 40),
                  "'; expected an integer from ", k.lo, " to ", k.hi);
        if (key == "NDims") ndims = v;
        break;
      }
      case MetaKind::Numbers:
      case MetaKind::Matrix: {
        size_t expected = k.kind == MetaKind::Matrix ? size_t(ndims * ndims) : meta_count(key, ndims);
        const bool per_axis = k.kind == MetaKind::Matrix || expected == size_t(ndims);
        h.fail_if(per_axis && ndims == 0, "MetaImage ", key, " comes before NDims; expected NDims first");
        if (expected == 0) expected = words.empty() || words.size() > 64 ? 1 : words.size();
        h.fail_if(words.size() != expected, "MetaImage ", key, " holds ", words.size(), " value(s); expected ",
                  expected);
        for (const auto& w : words) {
          if (key == "DimSize" || key == "SequenceID") {
            int64_t v = 0;
            h.fail_if(!parse_int(w, key == "DimSize" ? 1 : 0, kMaxSize, v), "MetaImage ", key, " holds '",
                      w.substr(0, 40), "'; expected positive integers");
          } else {
            double v = 0;
            h.fail_if(!parse_number(w, false, v), "MetaImage ", key, " holds '", w.substr(0, 40),
                      "'; expected finite numbers");
          }
        }
        break;
      }
      case MetaKind::Letters:
        h.fail_if(value.size() > 16 || value.find_first_not_of("RLAPSIrlapsi?") != std::string::npos,
                  "MetaImage AnatomicalOrientation is '", value.substr(0, 40),
                  "'; expected one of the letters R, L, A, P, S, I per axis");
        break;
    }
    if (key == "ObjectType")
      h.fail_if(value != "Image", "MetaImage ObjectType is '", value.substr(0, 40), "'; expected Image");
    if (key == "ElementType")
      h.fail_if(!meta_element_types().count(value), "MetaImage ElementType is '", value.substr(0, 40),
                "'; expected a scalar type such as MET_UCHAR, MET_SHORT or MET_FLOAT");
    if (key == "ElementDataFile") {
      data_file = value;
      break;  // the data follow this line
    }
  }
  h.fail_if(data_file.empty(), "the MetaImage header has no ElementDataFile line (truncated or not a MetaImage)");
  for (const char* required : {"NDims", "DimSize", "ElementType"})
    h.fail_if(!seen.count(required), "the MetaImage header has no ", required, " line");
  if (data_file != "LOCAL") check_data_file_name(h, "MetaImage ElementDataFile", data_file);
}

// ---- NRRD -------------------------------------------------------------------------------------------------------

enum class NrrdKind { Text, Type, Dimension, Sizes, AxisNumbers, AxisWords, Space, SpaceDimension, Directions,
                      Origin, Frame, Endian, Encoding, DataFile, LineSkip, ByteSkip, Number, PerAxisText };

const std::map<std::string, NrrdKind>& nrrd_fields() {
  static const std::map<std::string, NrrdKind> fields = {
      {"type", NrrdKind::Type},
      {"dimension", NrrdKind::Dimension},
      {"sizes", NrrdKind::Sizes},
      {"spacings", NrrdKind::AxisNumbers},
      {"thicknesses", NrrdKind::AxisNumbers},
      {"axis mins", NrrdKind::AxisNumbers},
      {"axismins", NrrdKind::AxisNumbers},
      {"axis maxs", NrrdKind::AxisNumbers},
      {"axismaxs", NrrdKind::AxisNumbers},
      {"kinds", NrrdKind::AxisWords},
      {"centers", NrrdKind::AxisWords},
      {"centerings", NrrdKind::AxisWords},
      {"labels", NrrdKind::PerAxisText},
      {"units", NrrdKind::PerAxisText},
      {"space units", NrrdKind::PerAxisText},
      {"space", NrrdKind::Space},
      {"space dimension", NrrdKind::SpaceDimension},
      {"space directions", NrrdKind::Directions},
      {"space origin", NrrdKind::Origin},
      {"measurement frame", NrrdKind::Frame},
      {"endian", NrrdKind::Endian},
      {"encoding", NrrdKind::Encoding},
      {"data file", NrrdKind::DataFile},
      {"datafile", NrrdKind::DataFile},
      {"line skip", NrrdKind::LineSkip},
      {"lineskip", NrrdKind::LineSkip},
      {"byte skip", NrrdKind::ByteSkip},
      {"byteskip", NrrdKind::ByteSkip},
      {"content", NrrdKind::Text},
      {"sample units", NrrdKind::Text},
      {"sampleunits", NrrdKind::Text},
      {"number", NrrdKind::Text},
      {"min", NrrdKind::Number},
      {"max", NrrdKind::Number},
      {"old min", NrrdKind::Number},
      {"oldmin", NrrdKind::Number},
      {"old max", NrrdKind::Number},
      {"oldmax", NrrdKind::Number},
  };
  return fields;
}

const std::set<std::string>& nrrd_types() {
  static const std::set<std::string> types = {
      "signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t", "short", "short int",
      "signed short", "signed short int", "int16", "int16_t", "ushort", "unsigned short", "unsigned short int",
      "uint16", "uint16_t", "int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
      "longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t",
      "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t", "float", "double"};
  return types;
}

const std::set<std::string>& nrrd_axis_words() {
  static const std::set<std::string> words = {
      "domain", "space", "time", "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar",
      "complex", "2-vector", "3-color", "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color", "3-vector",
      "3-gradient", "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix", "2d-masked-symmetric-matrix",
      "2d-matrix", "2d-masked-matrix", "3d-symmetric-matrix", "3d-masked-symmetric-matrix", "3d-matrix",
      "3d-masked-matrix", "???", "none", "cell", "node"};
  return words;
}

// Space name -> its dimension.
const std::map<std::string, int>& nrrd_spaces() {
  static const std::map<std::string, int> spaces = {
      {"right-anterior-superior", 3}, {"ras", 3}, {"left-anterior-superior", 3}, {"las", 3},
      {"left-posterior-superior", 3}, {"lps", 3}, {"right-anterior-superior-time", 4}, {"rast", 4},
      {"left-anterior-superior-time", 4}, {"last", 4}, {"left-posterior-superior-time", 4}, {"lpst", 4},
      {"scanner-xyz", 3}, {"scanner-xyz-time", 4}, {"3d-right-handed", 3}, {"3d-left-handed", 3},
      {"3d-right-handed-time", 4}, {"3d-left-handed-time", 4}};
  return spaces;
}

// "(a,b,c)" with `n` finite numbers.
bool nrrd_vector(const std::string& s, size_t n) {
  if (s.size() < 3 || s.front() != '(' || s.back() != ')' || s[s.size() - 2] == ',') return false;
  const auto parts = split_trimmed(s.substr(1, s.size() - 2), ',');
  double v = 0;
  for (const auto& part : parts)
    if (!parse_number(part, false, v)) return false;
  return parts.size() == n;
}

// The vectors of a value, split at spaces outside parentheses: "(1,0,0) (0, 1, 0) none".
std::vector<std::string> nrrd_vectors(const std::string& value) {
  std::vector<std::string> out;
  std::string current;
  int depth = 0;
  for (const char c : value) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if ((c == ' ' || c == '\t') && depth == 0) {
      if (!current.empty()) out.push_back(current);
      current.clear();
    } else if (c != ' ' && c != '\t') {
      current += c;
    }
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

struct NrrdHeader {
  std::string encoding, data_file;
  int64_t byte_skip = 0, line_skip = 0;
  uint64_t attached_bytes = 0;
};

NrrdHeader check_nrrd_header_fields(const std::filesystem::path& path) {
  HeaderText h(path, "NRRD");
  std::string line;
  h.fail_if(!h.next(line) || line.size() != 8 || line.compare(0, 7, "NRRD000") != 0 || line[7] < '1' ||
                line[7] > '5',
            "not a NRRD file: the first line must be NRRD0001 to NRRD0005");
  std::set<std::string> seen;
  int64_t dimension = 0, space_dimension = 0;
  NrrdHeader out;
  bool blank = false;
  while (h.next(line)) {
    if (line.empty()) {
      blank = true;  // the attached data follow
      break;
    }
    if (line[0] == '#') continue;
    const auto kv = line.find(":=");
    const auto colon = line.find(": ");
    if (kv != std::string::npos && (colon == std::string::npos || kv < colon)) {
      h.fail_if(kv == 0, "line ", h.line_number(), " of the NRRD header is a key/value pair without a key");
      continue;
    }
    h.fail_if(colon == std::string::npos, "line ", h.line_number(),
              " of the NRRD header is neither 'field: value' nor 'key:=value'");
    const std::string field = lower(line.substr(0, colon));
    const std::string value = trim(line.substr(colon + 2));
    const auto known = nrrd_fields().find(field);
    h.fail_if(known == nrrd_fields().end(), "unknown NRRD field '", field.substr(0, 40), "' on line ",
              h.line_number());
    h.fail_if(!seen.insert(known->first).second, "the NRRD field '", field, "' appears twice");
    const auto words = split_words(value);
    const NrrdKind kind = known->second;
    const bool per_axis = kind == NrrdKind::Sizes || kind == NrrdKind::AxisNumbers || kind == NrrdKind::AxisWords ||
                          kind == NrrdKind::Directions;
    h.fail_if(per_axis && dimension == 0, "the NRRD field '", field, "' comes before 'dimension'");
    switch (kind) {
      case NrrdKind::Text:
      case NrrdKind::PerAxisText:
        break;
      case NrrdKind::Type:
        h.fail_if(!nrrd_types().count(lower(value)), "NRRD type '", value.substr(0, 40),
                  "' is not supported; expected an integer or floating-point scalar type");
        break;
      case NrrdKind::Dimension:
        h.fail_if(!parse_int(value, 1, kMaxDims, dimension), "NRRD dimension is '", value.substr(0, 40),
                  "'; expected 1 to ", kMaxDims);
        break;
      case NrrdKind::SpaceDimension:
        h.fail_if(seen.count("space"), "NRRD 'space' and 'space dimension' are both given; expected one");
        h.fail_if(!parse_int(value, 1, kMaxDims, space_dimension), "NRRD space dimension is '",
                  value.substr(0, 40), "'; expected 1 to ", kMaxDims);
        break;
      case NrrdKind::Space: {
        h.fail_if(seen.count("space dimension"), "NRRD 'space' and 'space dimension' are both given; expected one");
        const auto s = nrrd_spaces().find(lower(value));
        h.fail_if(s == nrrd_spaces().end(), "NRRD space '", value.substr(0, 40),
                  "' is not a known space (e.g. left-posterior-superior, RAS, scanner-xyz)");
        space_dimension = s->second;
        break;
      }
      case NrrdKind::Sizes:
      case NrrdKind::AxisNumbers:
      case NrrdKind::AxisWords: {
        h.fail_if(int64_t(words.size()) != dimension, "NRRD ", field, " holds ", words.size(),
                  " value(s); expected ", dimension, " (the dimension)");
        for (const auto& w : words) {
          int64_t n = 0;
          double v = 0;
          if (kind == NrrdKind::Sizes)
            h.fail_if(!parse_int(w, 1, kMaxSize, n), "NRRD sizes holds '", w.substr(0, 40),
                      "'; expected positive integers");
          else if (kind == NrrdKind::AxisNumbers)
            h.fail_if(!parse_number(w, true, v), "NRRD ", field, " holds '", w.substr(0, 40),
                      "'; expected numbers (or nan)");
          else
            h.fail_if(!nrrd_axis_words().count(lower(w)), "NRRD ", field, " holds '", w.substr(0, 40),
                      "', which is not a known axis kind or centering");
        }
        break;
      }
      case NrrdKind::Directions:
      case NrrdKind::Origin:
      case NrrdKind::Frame: {
        h.fail_if(space_dimension == 0, "the NRRD field '", field, "' comes before 'space' or 'space dimension'");
        const auto vectors = nrrd_vectors(value);
        const size_t expected = kind == NrrdKind::Directions ? size_t(dimension)
                                : kind == NrrdKind::Origin   ? 1
                                                             : size_t(space_dimension);
        h.fail_if(vectors.size() != expected, "NRRD ", field, " holds ", vectors.size(), " vector(s); expected ",
                  expected);
        for (const auto& v : vectors)
          h.fail_if(!(kind == NrrdKind::Directions && v == "none") && !nrrd_vector(v, size_t(space_dimension)),
                    "NRRD ", field, " holds '", v.substr(0, 40), "'; expected (x,y,z) with ", space_dimension,
                    " finite numbers", kind == NrrdKind::Directions ? " or none" : "");
        break;
      }
      case NrrdKind::Endian:
        h.fail_if(lower(value) != "little" && lower(value) != "big", "NRRD endian is '", value.substr(0, 40),
                  "'; expected little or big");
        break;
      case NrrdKind::Encoding: {
        const std::string e = lower(value);
        h.fail_if(e != "raw" && e != "gzip" && e != "gz" && e != "ascii" && e != "text" && e != "txt" && e != "hex",
                  "NRRD encoding '", value.substr(0, 40), "' is not supported; expected raw, gzip, ascii or hex");
        out.encoding = e;
        break;
      }
      case NrrdKind::DataFile:
        check_data_file_name(h, "NRRD data file", value);
        out.data_file = value;
        break;
      case NrrdKind::LineSkip:
        h.fail_if(!parse_int(value, 0, 1 << 20, out.line_skip), "NRRD line skip is '", value.substr(0, 40),
                  "'; expected 0 to ", 1 << 20);
        break;
      case NrrdKind::ByteSkip:
        h.fail_if(!parse_int(value, -1, kMaxSkip, out.byte_skip), "NRRD byte skip is '", value.substr(0, 40),
                  "'; expected -1 to 2^40");
        break;
      case NrrdKind::Number: {
        double v = 0;
        h.fail_if(!parse_number(value, true, v), "NRRD ", field, " is '", value.substr(0, 40),
                  "'; expected a number");
        break;
      }
    }
  }
  for (const char* required : {"type", "dimension", "sizes", "encoding"})
    h.fail_if(!seen.count(required), "the NRRD header has no '", required, "' field");
  if (out.data_file.empty()) {
    h.fail_if(has_suffix(path, ".nhdr"), "the NRRD header has no 'data file' field; a .nhdr needs one");
    h.fail_if(!blank, "the NRRD header does not end with an empty line before its data (truncated?)");
    out.attached_bytes = h.bytes_after();
  }
  return out;
}

}  // namespace

void check_text_header(const std::filesystem::path& path) {
  if (has_suffix(path, ".mha") || has_suffix(path, ".mhd")) check_metaimage_header(path);
  else if (has_suffix(path, ".nrrd") || has_suffix(path, ".nhdr")) check_nrrd_header_fields(path);
}

void check_nrrd_data_size(const std::filesystem::path& path, uint64_t data_bytes) {
  const NrrdHeader h = check_nrrd_header_fields(path);
  if (h.encoding != "raw" || h.line_skip != 0 || h.byte_skip < 0) return;  // left to NrrdIO
  const std::string p = path.string();
  uint64_t available = h.attached_bytes;
  if (!h.data_file.empty()) {
    const auto raw = path.parent_path() / h.data_file;
    std::error_code ec;
    TF_CHECK(std::filesystem::is_regular_file(raw, ec), IoError, "data file '", raw.string(), "' of '", p,
             "' does not exist or is not a file");
    available = std::filesystem::file_size(raw);
  }
  const uint64_t skip = uint64_t(h.byte_skip);
  available = available > skip ? available - skip : 0;
  TF_CHECK(available >= data_bytes, FormatError, "'", p, "' is truncated: header promises ", data_bytes,
           " bytes of pixel data, found ", available);
}

}  // namespace teachformer::io::detail
