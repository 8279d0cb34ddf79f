// Folder evaluation under each protocol on tiny volumes written at test time: pairing, missing and empty cases,
// geometry checks, summary.json layout, cases.csv, HECKTOR boxes and aggregates, PI-CAI metrics.json.
#include "teachformer/metrics/protocols.hpp"

#include <cmath>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::metrics {
namespace {

using teachformer::test::message_of;

using torch::indexing::Slice;

Geometry geometry(Vec3 spacing = {1, 1, 2}) {
  Geometry g;
  g.spacing = spacing;
  g.origin = {0, 0, 0};
  return g;
}

torch::Tensor zeros(int64_t z = 6, int64_t y = 8, int64_t x = 8) { return torch::zeros({z, y, x}, torch::kUInt8); }

torch::Tensor with_box(torch::Tensor t, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi, int value = 1) {
  t.index_put_({Slice(lo[0], hi[0]), Slice(lo[1], hi[1]), Slice(lo[2], hi[2])}, value);
  return t;
}

void write_label(const fs::path& p, const torch::Tensor& t, const Geometry& g = geometry()) {
  io::write_label(p, io::Volume{t.unsqueeze(0).to(torch::kUInt8), g});
}

void write_map(const fs::path& p, const torch::Tensor& t, const Geometry& g = geometry()) {
  io::write_image(p, io::Volume{t.unsqueeze(0).to(torch::kFloat32), g}, io::PixelType::Float32);
}

EvaluateOptions quiet(Protocol p = Protocol::Generic) {
  EvaluateOptions o;
  o.protocol = p;
  o.progress = ProgressMode::Quiet;
  return o;
}

/// Four reference cases: a (pred shifted by one voxel), b (pred empty), c (no prediction), d (two labels, exact).
struct GenericFolders {
  test::TempDir dir;
  fs::path ref = dir / "ref", pred = dir / "pred";
  GenericFolders() {
    const torch::Tensor cube = with_box(zeros(), {1, 2, 2}, {3, 6, 6});  // 2 x 4 x 4 = 32 voxels
    write_label(ref / "a.nii.gz", cube);
    write_label(pred / "a.nii.gz", with_box(zeros(), {1, 2, 3}, {3, 6, 7}));
    write_label(ref / "b.nii.gz", cube);
    write_label(pred / "b.nii.gz", zeros());
    write_label(ref / "c.nii.gz", cube);
    const torch::Tensor two = with_box(cube.clone(), {4, 0, 0}, {5, 2, 2}, 2);
    write_label(ref / "d.mha", two);
    write_label(pred / "d.nii.gz", two);
    write_label(pred / "zzz.nii.gz", cube);  // no reference
  }
};

TEST(Pairing, CasesArePairedByIdAcrossExtensionsAndSuffixes) {
  GenericFolders f;
  const Pairing p = pair_cases(f.ref, f.pred);
  ASSERT_EQ(p.cases.size(), 4u);
  EXPECT_EQ(p.cases[0].case_id, "a");
  EXPECT_TRUE(p.cases[2].prediction.empty());  // c is missing
  EXPECT_EQ(p.cases[3].prediction.filename(), "d.nii.gz");  // .mha reference, .nii.gz prediction
  ASSERT_EQ(p.unmatched_predictions.size(), 1u);
  EXPECT_EQ(case_id_of("x/CHGJ007_gtvt.nii.gz", "_gtvt"), "CHGJ007");
  EXPECT_EQ(case_id_of("x/10001_1000001_detection_map.mha", "_detection_map"), "10001_1000001");
  EXPECT_EQ(case_id_of("x/case.nii", "_gtvt"), "case");
}

TEST(Pairing, MissingFoldersEmptyFoldersAndUnrelatedNamesAreClearErrors) {
  GenericFolders f;
  EXPECT_EQ(message_of([&] { pair_cases(f.dir / "nope", f.pred); }),
            "reference folder '" + (f.dir / "nope").string() + "' does not exist");
  fs::create_directories(f.dir / "empty");
  write_file_atomic(f.dir / "empty" / "notes.txt", "not an image");
  EXPECT_NE(message_of([&] { pair_cases(f.ref, f.dir / "empty"); })
                .find("prediction folder '" + (f.dir / "empty").string() + "' holds no image files"),
            std::string::npos);
  write_label(f.dir / "other" / "a_0000.nii.gz", zeros());
  EXPECT_NE(message_of([&] { pair_cases(f.ref, f.dir / "other"); }).find("use --ref-suffix/--pred-suffix"),
            std::string::npos);
  write_label(f.dir / "dup" / "a.nii.gz", zeros());
  write_label(f.dir / "dup" / "a.mha", zeros());
  EXPECT_NE(message_of([&] { pair_cases(f.dir / "dup", f.pred); }).find("share the case id 'a'"), std::string::npos);
}

TEST(GenericProtocol, SummaryFollowsNnunetLayoutAndCountsMissingAndEmptyCases) {
  GenericFolders f;
  const EvaluationResult r = evaluate_folders(f.ref, f.pred, quiet());
  EXPECT_EQ(r.labels, (std::vector<int>{1, 2}));
  const Json& s = r.summary;
  ASSERT_EQ(s["metric_per_case"].size(), 4u);
  const Json& a = s["metric_per_case"][0];
  EXPECT_EQ(a["case_id"], "a");
  EXPECT_EQ(a["reference_file"], (f.ref / "a.nii.gz").string());
  EXPECT_EQ(a["prediction_file"], (f.pred / "a.nii.gz").string());
  EXPECT_DOUBLE_EQ(a["metrics"]["1"]["Dice"].get<double>(), 0.75);
  EXPECT_EQ(a["metrics"]["1"]["TP"], 24.0);
  EXPECT_EQ(a["metrics"]["1"]["n_ref"], 32.0);
  EXPECT_DOUBLE_EQ(a["metrics"]["1"]["HD95"].get<double>(), 1.0);
  for (const char* k : {"Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref", "HD95", "HD", "ASSD", "NSD",
                        "Precision", "Recall", "volume_pred_mm3"})
    EXPECT_TRUE(a["metrics"]["1"].contains(k)) << k;
  EXPECT_TRUE(a["metrics"]["2"]["Dice"].is_null());  // label 2 absent from case a: both empty
  EXPECT_EQ(a["status"]["2"], "both_empty");
  const Json& c = s["metric_per_case"][2];
  EXPECT_TRUE(c["missing"].get<bool>());
  EXPECT_TRUE(c["prediction_file"].is_null());
  EXPECT_EQ(c["metrics"]["1"]["Dice"], 0.0);
  EXPECT_DOUBLE_EQ(s["mean"]["1"]["Dice"].get<double>(), (0.75 + 0 + 0 + 1) / 4);
  EXPECT_DOUBLE_EQ(s["mean"]["2"]["Dice"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["foreground_mean"]["Dice"].get<double>(), (0.4375 + 1.0) / 2);
  EXPECT_EQ(s["statistics"]["1"]["HD95"]["n_nan"], 2);  // b and c: empty predictions
  EXPECT_EQ(s["statistics"]["1"]["HD"]["n_inf"], 2);
  EXPECT_EQ(s["statistics"]["1"]["HD95"]["n_finite"], 2);
  EXPECT_EQ(s["empty_cases"]["1"]["missing"], 1);
  EXPECT_EQ(s["empty_cases"]["1"]["pred_empty"], 2);
  EXPECT_EQ(s["empty_cases"]["2"]["both_empty"], 3);
  EXPECT_EQ(s["missing_cases"], Json::array({"c"}));
  EXPECT_EQ(s["unmatched_predictions"].size(), 1u);
  EXPECT_EQ(s["protocol"], "generic");
  // cases.csv: a header and one row per case and label.
  EXPECT_EQ(r.cases_csv.rfind("case_id,label,status,missing,reference_file,prediction_file,Dice,IoU", 0), 0u);
  EXPECT_EQ(std::count(r.cases_csv.begin(), r.cases_csv.end(), '\n'), 9);
  EXPECT_NE(r.cases_csv.find("b,1,pred_empty,0,"), std::string::npos);
  EXPECT_NE(r.table.find("label 1: 4 cases (1 missing, 2 prediction empty"), std::string::npos);
  // Outputs.
  const OutputPaths out = output_paths(f.dir / "out");
  write_evaluation(r, out);
  EXPECT_EQ(read_json(out.summary)["metric_per_case"].size(), 4u);
  EXPECT_TRUE(fs::exists(f.dir / "out" / "cases.csv"));
  EXPECT_EQ(output_paths("x/s.json").cases_csv, fs::path("x/cases.csv"));
}

TEST(GenericProtocol, RequestedLabelsAndGeometryMismatch) {
  GenericFolders f;
  EvaluateOptions o = quiet();
  o.labels = {2};
  EXPECT_EQ(evaluate_folders(f.ref, f.pred, o).summary["mean"].size(), 1u);
  Geometry shifted = geometry();
  shifted.origin[0] = 0.5;
  write_label(f.pred / "b.nii.gz", zeros(), shifted);
  const std::string m = message_of([&] { evaluate_folders(f.ref, f.pred, quiet()); });
  EXPECT_NE(m.find("geometry mismatch between prediction '" + (f.pred / "b.nii.gz").string() + "' and reference '" +
                   (f.ref / "b.nii.gz").string() + "': origin [0.5, 0, 0] vs [0, 0, 0] mm"),
            std::string::npos)
      << m;
  write_label(f.pred / "b.nii.gz", zeros(6, 8, 9));
  EXPECT_NE(message_of([&] { evaluate_folders(f.ref, f.pred, quiet()); }).find("size (x, y, z) [9, 8, 6] vs [8, 8, 6]"),
            std::string::npos);
  o.bbox_csv = "boxes.csv";
  EXPECT_THROW(evaluate_folders(f.ref, f.pred, o), InvalidArgument);
}

/// p1: single voxels 3 voxels apart along x, plus a prediction blob outside the box; p2: boxes shifted by 2
/// voxels along x (Dice 0.5); p3: missing; spacing (1, 1, 3).
struct HecktorFolders {
  test::TempDir dir;
  fs::path ref = dir / "ref", pred = dir / "pred", csv = dir / "bb.csv";
  HecktorFolders() {
    const Geometry g = geometry({1, 1, 3});
    write_label(ref / "p1.nii.gz", with_box(zeros(6, 10, 20), {2, 3, 2}, {3, 4, 3}), g);
    write_label(pred / "p1.nii.gz", with_box(with_box(zeros(6, 10, 20), {2, 3, 5}, {3, 4, 6}), {2, 3, 18}, {3, 4, 19}),
                g);
    write_label(ref / "p2.nii.gz", with_box(zeros(6, 10, 20), {1, 2, 2}, {3, 5, 6}), g);
    write_label(pred / "p2.nii.gz", with_box(zeros(6, 10, 20), {1, 2, 4}, {3, 5, 8}), g);
    write_label(ref / "p3.nii.gz", with_box(zeros(6, 10, 20), {1, 2, 2}, {3, 5, 6}), g);
    write_file_atomic(csv, "PatientID,x1,x2,y1,y2,z1,z2\np1,0,12,0,9,0,15\np2,0,12,0,9,0,15\np3,0,12,0,9,0,15\n");
  }
};

TEST(Hecktor2021Protocol, BoxCropSurfelHd95MissingCasesAndLeaderboard) {
  HecktorFolders f;
  EvaluateOptions o = quiet(Protocol::Hecktor2021);
  o.bbox_csv = f.csv;
  const EvaluationResult r = evaluate_folders(f.ref, f.pred, o);
  const Json& pc = r.summary["metric_per_case"];
  EXPECT_DOUBLE_EQ(pc[0]["metrics"]["1"]["HD95"].get<double>(), 3.0);  // the blob at x 18 lies outside the box
  EXPECT_EQ(pc[0]["metrics"]["1"]["Dice"], 0.0);
  EXPECT_DOUBLE_EQ(pc[1]["metrics"]["1"]["Dice"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(pc[1]["metrics"]["1"]["HD95"].get<double>(), 2.0);
  EXPECT_TRUE(pc[2]["metrics"]["1"]["HD95"].is_null());  // +inf for the missing case
  EXPECT_EQ(pc[2]["metrics"]["1"]["Recall"], 0.0);
  const Json& lb = r.summary["hecktor2021"]["1"];
  EXPECT_DOUBLE_EQ(lb["mean_DSC"].get<double>(), 0.5 / 3);
  EXPECT_DOUBLE_EQ(lb["median_HD95"].get<double>(), 3.0);  // median of 2, 3 and inf
  EXPECT_EQ(lb["n_HD95_inf"], 1);
  EXPECT_NE(r.table.find("mean DSC 0.1667, median HD95 3.0000 mm (1 infinite"), std::string::npos) << r.table;
  // Without the box the blob at x 18 counts.
  EXPECT_GT(evaluate_folders(f.ref, f.pred, quiet(Protocol::Hecktor2021))
                .summary["metric_per_case"][0]["metrics"]["1"]["HD95"]
                .get<double>(),
            3.0);
  // The official evaluator applies (x, y, z) spacing to [z, y, x] arrays: x distances use the z spacing.
  o.hecktor_official = true;
  const EvaluationResult off = evaluate_folders(f.ref, f.pred, o);
  EXPECT_DOUBLE_EQ(off.summary["metric_per_case"][0]["metrics"]["1"]["HD95"].get<double>(), 9.0);
  // A case id without a box row is an error naming the CSV.
  write_file_atomic(f.csv, "PatientID,x1,x2,y1,y2,z1,z2\np1,0,12,0,9,0,15\n");
  EXPECT_NE(message_of([&] { evaluate_folders(f.ref, f.pred, o); }).find("has no row for 2 case(s), e.g. 'p2'"),
            std::string::npos);
}

TEST(Hecktor2022Protocol, AggregatedDicePerClassCountsMissingCases) {
  test::TempDir dir;
  torch::Tensor ref1 = with_box(with_box(zeros(), {0, 0, 0}, {2, 2, 2}, 1), {3, 3, 3}, {5, 5, 5}, 2);
  torch::Tensor pred1 = with_box(with_box(zeros(), {0, 0, 0}, {2, 2, 2}, 1), {3, 3, 3}, {4, 5, 5}, 2);  // 4 of 8
  write_label(dir / "ref" / "CHUP-001.nii.gz", ref1);
  write_label(dir / "pred" / "CHUP-001.nii.gz", pred1);
  write_label(dir / "ref" / "CHUP-002.nii.gz", with_box(with_box(zeros(), {0, 0, 0}, {2, 2, 2}, 1), {3, 3, 3}, {4, 5, 4}, 2));
  const EvaluationResult r = evaluate_folders(dir / "ref", dir / "pred", quiet(Protocol::Hecktor2022));
  EXPECT_EQ(r.labels, (std::vector<int>{1, 2}));
  // GTVp: 2 * 8 / ((8 + 8) + (8 + 0)); GTVn: 2 * 4 / ((8 + 4) + (2 + 0)).
  EXPECT_DOUBLE_EQ(r.summary["hecktor2022"]["DSCagg"]["1"].get<double>(), 16.0 / 24);
  EXPECT_DOUBLE_EQ(r.summary["hecktor2022"]["DSCagg"]["2"].get<double>(), 8.0 / 14);
  EXPECT_EQ(r.summary["empty_cases"]["1"]["missing"], 1);
}

TEST(PicaiProtocol, DetectionMapsGiveAurocApAndPicaiMetricsJson) {
  test::TempDir dir;
  const fs::path ref = dir / "ref", pred = dir / "pred";
  const torch::Tensor lesion = with_box(zeros(4, 10, 10), {1, 2, 2}, {3, 6, 6});
  write_label(ref / "A.nii.gz", lesion);
  write_map(pred / "A.nii.gz", lesion.to(torch::kFloat32) * 0.9);
  write_label(ref / "B.nii.gz", zeros(4, 10, 10));
  write_map(pred / "B.nii.gz", with_box(zeros(4, 10, 10), {0, 0, 0}, {1, 2, 2}).to(torch::kFloat32) * 0.2);
  write_label(ref / "C.nii.gz", lesion);  // no prediction: the lesion is missed
  write_label(ref / "D.nii.gz", zeros(4, 10, 10));
  write_map(pred / "D.nii.gz", torch::zeros({4, 10, 10}));
  const EvaluationResult r = evaluate_folders(ref, pred, quiet(Protocol::Picai));
  ASSERT_TRUE(r.picai_metrics.has_value());
  const Json& m = *r.picai_metrics;
  EXPECT_DOUBLE_EQ(m["auroc"].get<double>(), 0.625);
  EXPECT_DOUBLE_EQ(m["AP"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(m["score"].get<double>(), 0.5625);
  EXPECT_EQ(m["num_cases"], 4);
  EXPECT_EQ(m["num_lesions"], 2);
  EXPECT_EQ(m["case_target"]["C"], 1);
  EXPECT_EQ(m["lesion_results"]["C"], Json::parse("[[1, 0.0, 0.0]]"));
  EXPECT_DOUBLE_EQ(r.summary["picai"]["auroc"].get<double>(), 0.625);
  EXPECT_EQ(r.summary["metric_per_case"][0]["metrics"]["1"]["TP_lesions"], 1.0);
  EXPECT_EQ(r.summary["empty_cases"]["1"]["missing"], 1);
  const OutputPaths out = output_paths(dir / "out");
  write_evaluation(r, out);
  EXPECT_EQ(read_json(out.picai_metrics)["num_lesions"], 2);
}

TEST(PicaiProtocol, SoftmaxMapsAreTurnedIntoCandidates) {
  test::TempDir dir;
  const torch::Tensor lesion = with_box(zeros(4, 10, 10), {1, 2, 2}, {3, 6, 6});  // 32 voxels
  write_label(dir / "ref" / "S.nii.gz", lesion);
  torch::Tensor prob = torch::zeros({4, 10, 10});
  prob.index_put_({Slice(1, 3), Slice(2, 6), Slice(2, 6)}, 0.6);
  prob.index_put_({Slice(1, 3), Slice(3, 5), Slice(3, 5)}, 0.8);  // a peak: two values in one blob
  write_map(dir / "pred" / "S.nii.gz", prob);
  const EvaluationResult r = evaluate_folders(dir / "ref", dir / "pred", quiet(Protocol::Picai));
  const Json& m = r.summary["metric_per_case"][0]["metrics"]["1"];
  EXPECT_EQ(m["softmax_input"], 1.0);
  EXPECT_EQ(m["TP_lesions"], 1.0);
  EXPECT_FLOAT_EQ(float(m["case_confidence"].get<double>()), 0.8f);
  EXPECT_DOUBLE_EQ(m["Dice"].get<double>(), 1.0);  // threshold 0.32 keeps the whole 0.6 block
}

TEST(Protocols, NamesRoundTripAndUnknownNamesListTheValidOnes) {
  for (const auto& n : protocol_names()) EXPECT_EQ(to_string(protocol_from_string(n)), n);
  EXPECT_EQ(message_of([] { protocol_from_string("hecktor"); }),
            "unknown evaluation protocol 'hecktor'; expected one of [generic, hecktor2021, hecktor2022, picai]");
  EXPECT_EQ(picai_input_from_string("softmax"), PicaiInput::Softmax);
  EXPECT_THROW(picai_input_from_string("probabilities"), InvalidArgument);
}

TEST(Protocols, FlagsOfAnotherProtocolAreNamedWithTheProtocolThatUsesThem) {
  EXPECT_EQ(unused_flag_message(Protocol::Generic, {"--bbox"}),
            "--bbox is only used by --protocol hecktor2021 (protocol is generic)");
  EXPECT_EQ(unused_flag_message(Protocol::Hecktor2022, {"--labels", "--min-overlap"}),
            "--min-overlap is only used by --protocol picai (protocol is hecktor2022)");
  EXPECT_EQ(unused_flag_message(Protocol::Picai, {"--labels"}),
            "--labels is not used by --protocol picai (reference >= 1 is lesion)");
  EXPECT_EQ(unused_flag_message(Protocol::Picai, {"--percentile"}),
            "--percentile is not used by --protocol picai (no surface distances)");
  EXPECT_EQ(unused_flag_message(Protocol::Hecktor2021, {"--nsd-tolerance"}),
            "--nsd-tolerance is only used by --protocol generic and hecktor2022");
  // Every flag is used by at least one protocol, and each protocol accepts its own.
  EXPECT_EQ(unused_flag_message(Protocol::Hecktor2021, {"--bbox", "--hecktor-official", "--labels", "--percentile"}),
            "");
  EXPECT_EQ(unused_flag_message(Protocol::Picai,
                                {"--picai-input", "--candidate-threshold", "--min-voxels", "--min-overlap"}),
            "");
  EXPECT_EQ(unused_flag_message(Protocol::Generic, {"--labels", "--percentile", "--nsd-tolerance", "--unknown"}), "");
  EXPECT_EQ(protocol_specific_flags().size(), 9u);
}

TEST(Protocols, EvaluateRejectsOptionsOfAnotherProtocolBeforeReadingFiles) {
  EvaluateOptions o = quiet(Protocol::Picai);
  o.labels = {1};
  EXPECT_EQ(message_of([&] { evaluate_folders("/nonexistent/ref", "/nonexistent/pred", o); }),
            "evaluate: --labels is not used by --protocol picai (reference >= 1 is lesion)");
  o = quiet(Protocol::Generic);
  o.bbox_csv = "boxes.csv";
  EXPECT_EQ(message_of([&] { evaluate_folders("/nonexistent/ref", "/nonexistent/pred", o); }),
            "evaluate: --bbox is only used by --protocol hecktor2021 (protocol is generic)");
}

}  // namespace
}  // namespace teachformer::metrics
