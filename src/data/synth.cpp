#include "teachformer/data/synth.hpp"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <mutex>

#include "data/detail/parallel.hpp"
#include "data/detail/phantom.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/io/dicom.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/transforms/resample.hpp"

namespace teachformer::data {

std::string to_string(PhantomKind kind) { return kind == PhantomKind::PetCt ? "petct" : "mri"; }

std::string to_string(PhantomDifficulty d) { return d == PhantomDifficulty::Normal ? "normal" : "hard"; }

PhantomDifficulty phantom_difficulty_from_string(const std::string& name) {
  if (name == "normal") return PhantomDifficulty::Normal;
  if (name == "hard") return PhantomDifficulty::Hard;
  TF_THROW(InvalidArgument, "unknown phantom difficulty '", name, "'; difficulties: normal, hard");
}

PhantomKind phantom_kind_from_string(const std::string& name) {
  if (name == "petct") return PhantomKind::PetCt;
  if (name == "mri") return PhantomKind::Mri;
  TF_THROW(InvalidArgument, "--kind: unknown phantom kind '", name, "'; expected petct or mri");
}

DatasetFormat SynthOptions::resolved_layout() const {
  if (layout) return *layout;
  return kind == PhantomKind::PetCt ? DatasetFormat::Hecktor2021 : DatasetFormat::Picai;
}

Size3 SynthOptions::resolved_size() const {
  if (size) return *size;
  if (kind == PhantomKind::Mri) return {128, 128, 16};
  // Grow the CT so the bbox fits with room around it (1 x 1 x 3 mm voxels).
  const double fov = std::max(96.0, std::ceil(1.35 * bbox_mm));
  return {int64_t(fov), int64_t(fov), int64_t(std::ceil(fov / 3.0))};
}

void SynthOptions::validate() const {
  TF_CHECK(cases >= 1, InvalidArgument, "--cases must be at least 1, got ", cases);
  TF_CHECK(unlabelled >= 0 && unlabelled < cases, InvalidArgument, "--unlabelled must be in [0, --cases), got ",
           unlabelled, " with ", cases, " cases");
  const DatasetFormat l = resolved_layout();
  if (kind == PhantomKind::PetCt)
    TF_CHECK(l == DatasetFormat::NnUNet || l == DatasetFormat::Msd || l == DatasetFormat::Hecktor2021 ||
                 l == DatasetFormat::Dicom,
             InvalidArgument, "--layout ", to_string(l),
             " does not fit --kind petct; expected nnunet, msd, hecktor2021 or dicom");
  else
    TF_CHECK(l == DatasetFormat::NnUNet || l == DatasetFormat::Msd || l == DatasetFormat::Picai ||
                 l == DatasetFormat::Dicom,
             InvalidArgument, "--layout ", to_string(l), " does not fit --kind mri; expected nnunet, msd, picai or dicom");
  const Size3 s = resolved_size();
  const Size3 minimum = kind == PhantomKind::PetCt ? Size3{32, 32, 12} : Size3{32, 32, 6};
  for (int a = 0; a < 3; ++a)
    TF_CHECK(s[a] >= minimum[a] && s[a] <= 2048, InvalidArgument, "--size must be at least ", minimum,
             " (x, y, z) and at most 2048 per axis, got ", s);
  if (kind == PhantomKind::PetCt) {
    TF_CHECK(std::isfinite(bbox_mm) && bbox_mm >= 48.0, InvalidArgument, "--bbox-mm must be at least 48 mm, got ",
             bbox_mm);
    const double fov_xy = std::min(double(s[0]), double(s[1])) * 1.0, fov_z = double(s[2]) * 3.0;
    TF_CHECK(bbox_mm + 4.0 <= std::min(fov_xy, fov_z), InvalidArgument, "--bbox-mm ", bbox_mm,
             " does not fit the CT field of view of ", fov_xy, " x ", fov_xy, " x ", fov_z,
             " mm (1 x 1 x 3 mm voxels, --size ", s, "); enlarge --size or leave it out");
  }
}

Phantom make_phantom(const SynthOptions& options, int index) {
  options.validate();
  TF_CHECK(index >= 0 && index < options.cases, InvalidArgument, "make_phantom: index ", index, " outside [0, ",
           options.cases, ")");
  const auto names = detail::case_names(options);
  return options.kind == PhantomKind::PetCt ? detail::make_petct(options, index, names[size_t(index)])
                                            : detail::make_mri(options, index, names[size_t(index)]);
}

namespace {

// Every channel on the reference grid (nnU-Net and MSD keep one grid per case).
std::vector<io::Volume> on_reference_grid(const Phantom& p) {
  const int ref = reference_channel_index(p.channel_names);
  const Grid grid = p.channels[size_t(ref)].grid();
  std::vector<io::Volume> out;
  for (const auto& ch : p.channels)
    out.push_back(ch.grid().approx_equal(grid)
                      ? ch
                      : transforms::resample(ch, grid, transforms::Interpolation::Linear, ch.data.min().item<double>()));
  return out;
}

io::PixelType pixel_type_of(const std::string& channel) {
  return channel == "CT" || channel == "T2W" || channel == "ADC" ? io::PixelType::Int16 : io::PixelType::Float32;
}

std::string picai_fold(const std::string& patient) { return "picai_public_images_fold" + std::to_string(std::stoi(patient) % 5); }

// A UID that depends only on the case id and what it names, so a dataset written twice has the same studies.
std::string stable_uid(const std::string& id, const std::string& what) {
  uint64_t h = 1469598103934665603ull;
  for (char c : id + "/" + what) h = (h ^ uint64_t(static_cast<unsigned char>(c))) * 1099511628211ull;
  return "2.25." + std::to_string(h);
}

// One DICOM study per case: {root}/{id}/{channel}/IM00001.dcm ..., CT and PET sharing the frame of reference.
void write_dicom_case(const fs::path& root, const Phantom& p, bool mri) {
  const char* mr_descriptions[] = {"t2_tse_tra", "ep2d_diff_tra_ADC", "ep2d_diff_tra_CALC_BVAL"};
  for (size_t c = 0; c < p.channels.size(); ++c) {
    io::DicomSeriesHeader h;
    const std::string& name = p.channel_names[c];
    h.modality = mri ? "MR" : (name == "CT" ? "CT" : "PT");
    h.description = mri ? mr_descriptions[c % 3] : (name == "CT" ? "CT head-neck 3mm" : "PET AC WB");
    h.patient_id = p.patient_id;
    h.patient_name = "Phantom^" + p.patient_id;
    h.study_uid = stable_uid(p.id, "study");
    h.frame_of_reference_uid = stable_uid(p.id, mri ? "for/" + name : std::string("for"));
    h.series_uid = stable_uid(p.id, "series/" + name);
    h.series_number = int(c) + 1;
    // Injection at 09:00, scan at 10:05: decay over 65 minutes is in the Bq/mL values.
    h.injection_time = "090000";
    h.series_time = "100500";
    io::write_dicom_series(root / p.id / name, p.channels[c], h);
  }
}

SynthCase write_case(const fs::path& root, DatasetFormat layout, const Phantom& p, bool labelled) {
  SynthCase sc;
  sc.id = p.id;
  sc.patient_id = p.patient_id;
  sc.labelled = labelled;
  sc.channel_names = p.channel_names;
  sc.label_grid = p.label.grid();
  sc.lesions = p.lesions;
  io::Volume label = p.label;
  switch (layout) {
    case DatasetFormat::Hecktor2021: {
      const fs::path nii = root / "hecktor_nii";
      io::write_image(nii / (p.id + "_ct.nii.gz"), p.channels[0], io::PixelType::Int16);
      io::write_image(nii / (p.id + "_pt.nii.gz"), p.channels[1], io::PixelType::Float32);
      if (labelled) io::write_label(nii / (p.id + "_gtvt.nii.gz"), label);
      for (const auto& ch : p.channels) sc.channel_grids.push_back(ch.grid());
      sc.bbox = p.bbox;
      break;
    }
    case DatasetFormat::Picai: {
      const fs::path dir = root / picai_fold(p.patient_id) / p.patient_id;
      const char* seq[] = {"t2w", "adc", "hbv"};
      for (size_t c = 0; c < 3; ++c)
        io::write_image(dir / (p.id + "_" + seq[c] + ".mha"), p.channels[c], pixel_type_of(p.channel_names[c]));
      if (labelled)
        io::write_label(root / "picai_labels" / "csPCa_lesion_delineations" / "human_expert" / "resampled" /
                            (p.id + ".nii.gz"),
                        label);
      for (const auto& ch : p.channels) sc.channel_grids.push_back(ch.grid());
      break;
    }
    case DatasetFormat::NnUNet: {
      const auto channels = on_reference_grid(p);
      const fs::path dir = root / (labelled ? "imagesTr" : "imagesTs");
      for (size_t c = 0; c < channels.size(); ++c) {
        char suffix[16];
        std::snprintf(suffix, sizeof suffix, "_%04d", int(c));
        io::write_image(dir / (p.id + suffix + ".nii.gz"), channels[c], pixel_type_of(p.channel_names[c]));
        sc.channel_grids.push_back(channels[c].grid());
      }
      label.data = label.data.ge(1).to(torch::kUInt8);
      if (labelled) io::write_label(root / "labelsTr" / (p.id + ".nii.gz"), label);
      break;
    }
    case DatasetFormat::Msd: {
      const auto channels = on_reference_grid(p);
      std::vector<torch::Tensor> data;
      for (const auto& ch : channels) {
        data.push_back(ch.data);
        sc.channel_grids.push_back(ch.grid());
      }
      io::write_image(root / (labelled ? "imagesTr" : "imagesTs") / (p.id + ".nii.gz"),
                      io::Volume{torch::cat(data, 0), channels[0].geometry}, io::PixelType::Float32);
      label.data = label.data.ge(1).to(torch::kUInt8);
      if (labelled) io::write_label(root / "labelsTr" / (p.id + ".nii.gz"), label);
      break;
    }
    case DatasetFormat::Dicom: {
      write_dicom_case(root, p, p.channel_names.size() == 3);
      for (const auto& ch : p.channels) sc.channel_grids.push_back(ch.grid());
      if (labelled) io::write_label(root / "labels" / (p.id + ".nii.gz"), label);
      sc.bbox = p.bbox;
      break;
    }
    case DatasetFormat::Hecktor2022: TF_THROW(InvalidArgument, "synth: layout hecktor2022 is not written");
  }
  return sc;
}

std::string fixed(double v) { return format_fixed(v, 3); }  // mm in the bbox CSV

}  // namespace

SynthResult synthesize(const fs::path& out, const SynthOptions& options) {
  options.validate();
  const DatasetFormat layout = options.resolved_layout();
  SynthResult result;
  result.root = out;
  result.layout = layout;
  result.cases.resize(size_t(options.cases));
  std::vector<std::string> errors(size_t(options.cases));
  std::error_code ec;
  fs::create_directories(out, ec);
  TF_CHECK(!ec, IoError, "cannot create '", out.string(), "': ", ec.message());
  {
    ProgressBar bar("synth", options.cases);
    int64_t done = 0;
    detail::run_parallel(
        options.cases, options.workers,
        [&](int64_t i) {
          try {
            const Phantom p = make_phantom(options, int(i));
            result.cases[size_t(i)] = write_case(out, layout, p, i < options.cases - options.unlabelled);
          } catch (const std::exception& e) {
            errors[size_t(i)] = e.what();
          }
        },
        [&] { bar.update(++done); });
  }
  for (const auto& e : errors) TF_CHECK(e.empty(), IoError, "synth: ", e);

  const std::vector<std::string> names = result.cases.front().channel_names;
  const bool mri = options.kind == PhantomKind::Mri;
  int64_t labelled = 0;
  for (const auto& c : result.cases) labelled += c.labelled ? 1 : 0;
  if (layout == DatasetFormat::Hecktor2021 || (layout == DatasetFormat::Dicom && !mri)) {
    std::string csv = "PatientID,x1,x2,y1,y2,z1,z2\n";
    for (const auto& c : result.cases) {
      const auto& b = *c.bbox;
      csv += c.id + "," + fixed(b.min[0]) + "," + fixed(b.max[0]) + "," + fixed(b.min[1]) + "," + fixed(b.max[1]) +
             "," + fixed(b.min[2]) + "," + fixed(b.max[2]) + "\n";
    }
    write_file_atomic(out / (layout == DatasetFormat::Dicom ? "bbox.csv" : "hecktor2021_bbox_training.csv"), csv);
    // What was written: the CSV keeps 3 decimals.
    for (auto& c : result.cases)
      for (int a = 0; a < 3; ++a) {
        c.bbox->min[a] = std::stod(fixed(c.bbox->min[a]));
        c.bbox->max[a] = std::stod(fixed(c.bbox->max[a]));
      }
  } else if (layout == DatasetFormat::NnUNet) {
    Json channel_names = Json::object();
    for (size_t c = 0; c < names.size(); ++c) channel_names[std::to_string(c)] = names[c];
    write_json(out / "dataset.json", {{"name", mri ? "SynthProstate" : "SynthHeadNeck"},
                                      {"description", "teachformer synth phantom (--kind " + to_string(options.kind) + ", " +
                                                          to_string(options.difficulty) +
                                                          ", --seed " + std::to_string(options.seed) + ")"},
                                      {"channel_names", channel_names},
                                      {"labels", {{"background", 0}, {mri ? "lesion" : "tumor", 1}}},
                                      {"numTraining", labelled},
                                      {"file_ending", ".nii.gz"}});
  } else if (layout == DatasetFormat::Msd) {
    Json modality = Json::object();
    for (size_t c = 0; c < names.size(); ++c) modality[std::to_string(c)] = names[c];
    Json training = Json::array(), test = Json::array();
    for (const auto& c : result.cases) {
      if (c.labelled)
        training.push_back({{"image", "./imagesTr/" + c.id + ".nii.gz"}, {"label", "./labelsTr/" + c.id + ".nii.gz"}});
      else
        test.push_back("./imagesTs/" + c.id + ".nii.gz");
    }
    write_json(out / "dataset.json", {{"name", mri ? "SynthProstate" : "SynthHeadNeck"},
                                      {"description", "teachformer synth phantom"},
                                      {"tensorImageSize", "4D"},
                                      {"modality", modality},
                                      {"labels", {{"0", "background"}, {"1", mri ? "lesion" : "tumour"}}},
                                      {"numTraining", labelled},
                                      {"numTest", test.size()},
                                      {"training", training},
                                      {"test", test}});
  }
  return result;
}

}  // namespace teachformer::data
