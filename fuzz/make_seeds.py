#!/usr/bin/python3
"""Writes the seed corpora in fuzz/corpus/<target>/: small valid files of every reader's format, handwritten to the
layouts the writers produce, plus a few malformed ones. Run again after changing it; the files are committed.
Needs only Python's standard library, and pydicom for the DICOM seeds (scripts/install_deps.sh installs it).
Regressions (inputs that once crashed a reader) live beside the seeds as regression-*; this script leaves them be."""
import gzip
import io
import json
import os
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(data)
    return out.getvalue()


# --- safetensors ------------------------------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs)


f32 = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
put("safetensors", "f32_2x3.safetensors", safetensors({"w": ("F32", [2, 3], f32)}))
put("safetensors", "mixed_metadata.safetensors", safetensors(
    {"a": ("I64", [2], struct.pack("<2q", -1, 7)), "b": ("U8", [0, 4], b""), "c": ("BF16", [1], b"\x80\x3f"),
     "d": ("BOOL", [3], b"\x01\x00\x01")}, {"stats": "{\"count\": 1}", "format": "pt"}))
put("safetensors", "empty_header.safetensors", safetensors({}))
put("safetensors", "f16_scalar.safetensors.gz", gz(safetensors({"s": ("F16", [], b"\x00\x3c")})))
put("safetensors", "bad_length.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
put("safetensors", "bad_size.safetensors", safetensors({"w": ("F32", [3, 3], f32)}))
put("safetensors", "bad_json.safetensors", struct.pack("<Q", 6) + b"{\"a\":[")
put("safetensors", "bad_dtype.safetensors", safetensors({"w": ("C64", [1], b"\0" * 8)}))

# --- dataset.json (nnU-Net v2 and MSD) ----------------------------------------------------------------------------
put("dataset_json", "nnunet_v2.json", json.dumps({
    "name": "Dataset001_Fuzz", "channel_names": {"0": "CT", "1": "PET"},
    "labels": {"background": 0, "tumor": 1}, "numTraining": 0, "file_ending": ".nii.gz"}, indent=1))
put("dataset_json", "nnunet_listing.json", json.dumps({
    "channel_names": {"0": "T2"}, "labels": {"background": 0, "lesion": 1}, "numTraining": 1, "file_ending": ".nii.gz",
    "dataset": {"case_a": {"images": ["imagesTr/case_a_0000.nii.gz"], "label": "labelsTr/case_a.nii.gz"},
                "case_b": {"images": ["/abs/case_b_0000.nii.gz"]}}}, indent=1))
put("dataset_json", "msd.json", json.dumps({
    "name": "Task01_Fuzz", "modality": {"0": "FLAIR", "1": "T1w"}, "labels": {"0": "background", "1": "edema"},
    "numTraining": 1, "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}],
    "test": ["./imagesTs/b.nii.gz", {"image": "./imagesTs/c.nii.gz"}]}, indent=1))
put("dataset_json", "msd_as_nnunet.json", json.dumps({"modality": {"0": "CT"}, "labels": {"0": "background"}}))
put("dataset_json", "regions.json", json.dumps({
    "channel_names": {"0": "CT"}, "labels": {"background": 0, "whole": [1, 2]}, "file_ending": ".nii.gz"}))
put("dataset_json", "not_object.json", "[1, 2, 3]")

# --- plan.json ----------------------------------------------------------------------------------------------------
plan = {"version": 1,
        "channels": [{"name": "CT", "normalization": {"scheme": "window", "source": "fixed", "lower": -1000, "upper": 1000}},
                     {"name": "PET", "normalization": {"scheme": "zscore", "source": "default"}},
                     {"name": "MR", "normalization": {"scheme": "scale", "source": "x", "offset": 0.5, "divisor": 2}}],
        "reference_channel": "CT", "target_spacing": [1.0, 1.0, 3.0], "bbox": {"crop": True, "spacing": [1, 1, 1]},
        "image_interpolation": "linear", "label_interpolation": "nearest", "lesion_check": "warn",
        "snap_tolerance_voxels": 0.05}
put("plan", "plan_full.json", json.dumps(plan, indent=2))
put("plan", "plan_minimal.json", json.dumps({"version": 1, "channels": [{"name": "T2", "normalization": {"scheme": "none"}}],
                                             "reference_channel": "T2", "target_spacing": None}))
put("plan", "plan_bad_version.json", json.dumps(dict(plan, version=2.5)))
put("plan", "plan_unknown_key.json", json.dumps(dict(plan, spacing=[1, 1, 1])))

# --- options / records read through JsonReader --------------------------------------------------------------------
put("options", "augment.json", json.dumps({"p_flip": 0.5, "p_rot90": 0.5, "scale_range": [0.85, 1.25], "p_gamma": 0.3,
                                          "gamma_range": [0.7, 1.5], "intensity": True, "spatial": False}))
put("options", "normalization.json", json.dumps({"scheme": "window", "lower": -100, "upper": 200, "source": "fixed"}))
grid = {"size": [4, 5, 6], "spacing": [1.0, 1.0, 2.5], "origin": [-10.0, 0.0, 3.0],
        "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1]}
put("options", "grid.json", json.dumps(grid))
put("options", "case_geometry.json", json.dumps({"patient_id": "P1", "reference_channel": "CT", "reference": grid,
                                                "preprocessed": grid, "bbox": {"min": [0, 0, 0], "max": [1, 2, 3]},
                                                "channels": [{"name": "CT", "grid": grid}]}))
summary = {"count": 10, "mean": 1.5, "std": 0.5, "min": 0, "max": None, "p00_5": 0.1, "p99_5": 3}
put("options", "case_stats.json", json.dumps({"id": "c1", "patient_id": "p1", "shape": [4, 5, 6], "spacing": [1, 1, 1],
                                             "original_shape": [8, 10, 12], "original_spacing": [0.5, 0.5, 0.5],
                                             "labelled": True, "label_voxels": {"0": 100, "1": 20}, "lesions": 1,
                                             "channels": [{"foreground": summary, "all": summary,
                                                           "foreground_sample": [1.0, 2.0], "all_sample": [0.5]}]}))
put("options", "splits.json", json.dumps([{"train": ["a", "b"], "val": ["c"]}, {"train": ["c"], "val": ["a", "b"]}]))
put("options", "int_overflow.json", json.dumps({"size": [1e300, 5, 6], "lesions": 9.5e18, "count": -1e30}))
put("options", "huge_exponent.json", '{"p_flip": 1e400}')

# --- bbox CSV -----------------------------------------------------------------------------------------------------
put("bbox_csv", "hecktor.csv", "PatientID,x1,x2,y1,y2,z1,z2\nCHGJ007,-50.5,93.5,-226.2,-82.2,-298.6,-154.6\n"
                               "CHMR001,-61.0,83.0,-216.1,-72.1,-285.3,-141.3\n")
put("bbox_csv", "bom_crlf_quoted.csv", "\ufeffx1,PatientID,x2,y1,y2,z1,z2,extra\r\n1,\"A,1\",2,3,4,5,6,\"say \"\"hi\"\"\"\r\n")
put("bbox_csv", "bad_rows.csv", "PatientID,x1,x2,y1,y2,z1,z2\nA,1,2,3,4,5\nB,2,1,3,4,5,6\nC,x,2,3,4,5,6\nA,1,2,3,4,5,6\nA,1,2,3,4,5,6\n,1,2,3,4,5,6\n")
put("bbox_csv", "missing_column.csv", "PatientID,x1,x2,y1,y2,z1\nA,1,2,3,4,5\n")
put("bbox_csv", "unterminated.csv", "PatientID,x1,x2,y1,y2,z1,z2\n\"A,1,2,3,4,5,6\n")


# --- NIfTI --------------------------------------------------------------------------------------------------------
def nifti1(dims, datatype, bitpix, pixdim, data, vox_offset=352.0, qform=1, sform=1, endian="<"):
    h = bytearray(348)
    struct.pack_into(endian + "i", h, 0, 348)
    d = [len(dims)] + list(dims) + [1] * (7 - len(dims))
    struct.pack_into(endian + "8h", h, 40, *d)
    struct.pack_into(endian + "hh", h, 70, datatype, bitpix)
    struct.pack_into(endian + "8f", h, 76, 1.0, *(list(pixdim) + [1.0] * (7 - len(pixdim))))
    struct.pack_into(endian + "f", h, 108, vox_offset)
    struct.pack_into(endian + "f", h, 112, 1.0)  # scl_slope
    struct.pack_into(endian + "hh", h, 252, qform, sform)
    struct.pack_into(endian + "3f", h, 256, 0.0, 0.0, 0.0)  # quatern b c d: identity
    struct.pack_into(endian + "3f", h, 268, -10.0, 5.0, 2.5)
    struct.pack_into(endian + "4f", h, 280, pixdim[0], 0, 0, -10.0)
    struct.pack_into(endian + "4f", h, 296, 0, pixdim[1], 0, 5.0)
    struct.pack_into(endian + "4f", h, 312, 0, 0, pixdim[2] if len(pixdim) > 2 else 1.0, 2.5)
    h[344:348] = b"n+1\0"
    h[123] = 10  # xyzt_units: mm, s
    return bytes(h) + b"\0" * 4 + data


def nifti2(dims, datatype, bitpix, pixdim, data):
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, datatype, bitpix)
    struct.pack_into("<8q", h, 16, len(dims), *(list(dims) + [1] * (7 - len(dims))))
    struct.pack_into("<8d", h, 104, 1.0, *(list(pixdim) + [1.0] * (7 - len(pixdim))))
    struct.pack_into("<q", h, 168, 544)
    struct.pack_into("<d", h, 176, 1.0)
    struct.pack_into("<ii", h, 344, 1, 0)
    return bytes(h) + b"\0" * 4 + data


vals = struct.pack("<8f", *range(8))
put("image", "f32_2x2x2.nii", nifti1([2, 2, 2], 16, 32, [1.0, 1.5, 2.0], vals))
put("image", "u8_label_3x2x2.nii", nifti1([3, 2, 2], 2, 8, [0.8, 0.8, 3.0], bytes([0, 1, 1, 0, 2, 0, 0, 1, 1, 0, 0, 2])))
put("image", "i16_4d_2x2x1x2.nii", nifti1([2, 2, 1, 2], 4, 16, [1, 1, 1, 1], struct.pack("<8h", *range(-4, 4))))
put("image", "f64_big_endian_2x1x1.nii", nifti1([2, 1, 1], 64, 64, [1, 1, 1], struct.pack(">2d", 1.5, -2.5), endian=">"))
put("image", "u8_2d_2x2.nii", nifti1([2, 2], 2, 8, [1, 1], bytes([1, 2, 3, 4])))
put("image", "f32_2x2x2.nii.gz", gz(nifti1([2, 2, 2], 16, 32, [1.0, 1.0, 1.0], vals)))
put("image", "nifti2_u8_2x2x1.nii", nifti2([2, 2, 1], 2, 8, [1, 1, 1], bytes([0, 1, 2, 3])))
put("image", "truncated.nii", nifti1([4, 4, 4], 16, 32, [1, 1, 1], vals))
put("image", "vox_offset_past_end.nii", nifti1([2, 2, 2], 16, 32, [1, 1, 1], vals, vox_offset=1e9))
put("image", "nan_spacing.nii", nifti1([2, 2, 2], 16, 32, [float("nan"), 1, 1], vals))
put("image", "inf_sform.nii", nifti1([2, 2, 2], 16, 32, [1, 1, 1], vals)[:280] + struct.pack("<f", float("inf")) +
    nifti1([2, 2, 2], 16, 32, [1, 1, 1], vals)[284:])
put("image", "short_header.nii", b"\x5c\x01\x00\x00" + b"\0" * 100)
put("image", "meta.mha", "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementSpacing = 1 1 1\n"
                         "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n" + "\x01" * 8)
# As ITK's MetaImage writer writes them: geometry, byte order, compression, channels, metadata keys.
put("image", "itk_f32_2x2x2.mha",
    "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
    "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = -1.5 2 0.25\nCenterOfRotation = 0 0 0\n"
    "AnatomicalOrientation = RAI\nElementSpacing = 0.8 0.8 3\nITK_InputFilterName = NiftiImageIO\n"
    "DimSize = 2 2 2\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n".encode() + vals)
put("image", "itk_i16_msb_4d.mha",
    "ObjectType = Image\nNDims = 4\nBinaryData = True\nBinaryDataByteOrderMSB = True\nCompressedData = False\n"
    "TransformMatrix = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\nOffset = 0 0 0 0\nElementSpacing = 1 1 1 1\n"
    "DimSize = 2 1 1 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n".encode() +
    struct.pack(">4h", -2, 7, 300, -300))
zipped = zlib.compress(bytes(range(8)))
put("image", "itk_gzip_u8.mha",
    ("ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = True\nCompressedDataSize = %d\n"
     "ElementSpacing = 1 1 1\nDimSize = 2 2 2\nElementNumberOfChannels = 1\nElementType = MET_UCHAR\n"
     "ElementDataFile = LOCAL\n" % len(zipped)).encode() + zipped)
put("image", "detached.mha", "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
                             "ElementDataFile = ../outside.raw\n")
# NRRD as ITK's and 3D Slicer's writers write it (raw and gzip data attached), and a few malformed ones.
NRRD_HEAD = ("NRRD0004\n# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n"
             "type: {type}\ndimension: {dim}\nspace: left-posterior-superior\nsizes: {sizes}\n"
             "space directions: {dirs}\nkinds: {kinds}\nendian: little\nencoding: {enc}\n"
             "space origin: (-1.5,2,0.25)\n")
put("image", "itk_f32_raw.nrrd",
    NRRD_HEAD.format(type="float", dim=3, sizes="2 2 2", dirs="(0.8,0,0) (0,0.8,0) (0,0,3)",
                     kinds="domain domain domain", enc="raw").encode() + b"\n" + vals)
put("image", "itk_u8_gzip.nrrd",
    NRRD_HEAD.format(type="unsigned char", dim=3, sizes="3 2 2", dirs="(1,0,0) (0,1,0) (0,0,1)",
                     kinds="domain domain domain", enc="gzip").encode() + b"ITK_InputFilterName:=NiftiImageIO\n\n" +
    gz(bytes([0, 1, 1, 0, 2, 0, 0, 1, 1, 0, 0, 2])))
put("image", "slicer_vector.nrrd",
    NRRD_HEAD.format(type="short", dim=4, sizes="2 2 1 1", dirs="none (1,0,0) (0,1,0) (0,0,1)",
                     kinds="vector domain domain domain", enc="raw").encode() + b"\n" +
    struct.pack("<4h", 1, -1, 2, -2))
put("image", "ascii.nrrd", "NRRD0001\ntype: double\ndimension: 2\nsizes: 2 2\nspacings: 1 nan\n"
                           "encoding: ascii\n\n1.5 2\n-3 4e2\n")
put("image", "bad_field.nrrd", "NRRD0004\ntype: float\ndimension: 3\nsizes: 2 2\nencoding: raw\n\n")
put("image", "data_file_list.nrrd", "NRRD0004\ntype: uchar\ndimension: 2\nsizes: 2 2\nencoding: raw\n"
                                    "data file: LIST\nslice0.raw\n")

# --- distillation strategies -------------------------------------------------------------------------------------
put("strategy", "preset.json", '"teachformer"')
put("strategy", "unknown_preset.json", '"nope"')
put("strategy", "staged.json", json.dumps({"name": "mine", "stages": [
    {"name": "align", "fraction": 0.2, "weights": {"gt": 1, "attn_coarse": 1, "attn_fine": 1}},
    {"name": "joint", "epochs": 3, "weights": {"gt": 1, "kd": {"from": 0, "to": 1}, "attn_probs": 0.5}},
    {"name": "finetune", "fraction": 0.3, "weights": {"gt": 1, "kd": 1, "attn_coarse": {"from": 1, "to": 0}}}]},
    indent=1))
put("strategy", "zero_fractions.json", json.dumps({"stages": [{"fraction": 0, "weights": {"gt": 1}},
                                                              {"fraction": 0, "weights": {"kd": 1}}]}, indent=1))
put("strategy", "bad_term.json", json.dumps({"stages": [{"weights": {"attn_middle": 1}}]}, indent=1))

# --- DICOM --------------------------------------------------------------------------------------------------------
try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
except ImportError:
    pydicom = None
    print("make_seeds: pydicom missing, DICOM seeds left as they are", file=sys.stderr)

if pydicom:
    def dicom(modality, rows, cols, bits, signed, pixels, implicit=False, extra=None):
        meta = FileMetaDataset()
        sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "PT": "1.2.840.10008.5.1.4.1.1.128",
                     "MR": "1.2.840.10008.5.1.4.1.1.4"}[modality]
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.4"
        ds.Modality = modality
        ds.PatientID = "FUZZ"
        ds.SeriesNumber = "1"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.ImagePositionPatient = ["-10.0", "5.5", "2"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.5", "0.75"]
        ds.SliceThickness = "2.5"
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        for k, v in (extra or {}).items():
            setattr(ds, k, v)
        ds.PixelData = pixels
        ds.is_little_endian, ds.is_implicit_VR = True, implicit
        out = io.BytesIO()
        pydicom.dcmwrite(out, ds, write_like_original=False)
        return out.getvalue()

    put("dicom", "ct_i16_3x2.dcm", dicom("CT", 2, 3, 16, True, struct.pack("<6h", -5, 0, 5, 100, 200, 300)))
    put("dicom", "mr_u8_2x2_implicit.dcm", dicom("MR", 2, 2, 8, False, bytes([0, 1, 2, 3]), implicit=True))
    put("dicom", "ct_u32_1x2.dcm", dicom("CT", 1, 2, 32, False, struct.pack("<2I", 1, 70000)))
    rp = Dataset()
    rp.RadionuclideTotalDose = "370000000"
    rp.RadionuclideHalfLife = "6586.2"
    rp.RadiopharmaceuticalStartTime = "080000"
    put("dicom", "pt_suv_2x2.dcm", dicom("PT", 2, 2, 16, False, struct.pack("<4H", 0, 10, 100, 1000), extra={
        "Units": "BQML", "DecayCorrection": "START", "PatientWeight": "70", "SeriesDate": "20240101",
        "SeriesTime": "090000", "AcquisitionDate": "20240101", "AcquisitionTime": "090000",
        "RadiopharmaceuticalInformationSequence": pydicom.sequence.Sequence([rp])}))
    good = dicom("CT", 2, 3, 16, True, struct.pack("<6h", -5, 0, 5, 100, 200, 300))
    put("dicom", "truncated.dcm", good[:len(good) - 7])
    put("dicom", "preamble_only.dcm", b"\0" * 128 + b"DICM")
print("make_seeds: wrote", ROOT)
