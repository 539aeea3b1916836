#!/usr/bin/env python3
"""check_hdf5.py: read a raresynth HDF5 dataset file with h5py, as a user would, and compare
one case with the NIfTI files of the same case (docs/hdf5.md).

usage: check_hdf5.py FILE.h5 CASE_ID --images IMG.nii.gz [IMG.nii.gz ...]
                     --label LABEL.nii.gz --instances INSTANCES.nii.gz

Checks: every text attribute reads as str; the root's label dictionary, channel names, case
list and no-patient-data statement; image[c] equals channel c's NIfTI voxels (same dtype) with
the documented index order image[c, k, j, i] = nifti[i, j, k]; label and instances likewise;
the affine equals the NIfTI sform and spacing_mm its pixdim (both stored as float32 in NIfTI,
so both sides are compared after rounding to float32, which makes the comparison exact); the
lesion table agrees with the instance map (ids, voxel counts, boxes) and the affine
(centroid_mm = affine @ centroid_vox). Prints one line per failed check and exits 1, or
prints "check_hdf5: OK ..." and exits 0. Needs /usr/bin/python3 (h5py, nibabel, numpy).
"""
import argparse
import json
import sys

import h5py
import nibabel as nib
import numpy as np

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return cond


def nifti(path):
    img = nib.load(path)
    # dataobj without scaling: the stored dtype (scl_slope 1, scl_inter 0 in raresynth files).
    return img, np.asanyarray(img.dataobj)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("h5")
    ap.add_argument("case_id")
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--instances", required=True)
    a = ap.parse_args()

    with h5py.File(a.h5, "r") as f:
        root = f.attrs
        for key in ("format", "generator", "generator_version", "dataset_name", "recipe_sha256",
                    "dataset_seed", "modality", "labels", "coordinate_system", "index_order",
                    "data_sources"):
            check(isinstance(root.get(key), str), f"root attribute {key} is not read as str")
        check(root.get("format") == "raresynth-hdf5", "root format is not raresynth-hdf5")
        check("No patient data" in str(root.get("data_sources")), "no 'No patient data' statement")
        label_names = [str(s) for s in root["label_names"]]
        check(all(isinstance(s, str) for s in root["label_names"]), "label_names not str")
        labels = json.loads(root["labels"])
        check(labels == {n: i for i, n in enumerate(label_names)},
              f"labels {labels} disagree with label_names {label_names}")
        case_ids = [str(s) for s in root["case_ids"]]
        check(int(root["n_cases"]) == len(case_ids) == len(f["cases"]),
              "n_cases, case_ids and /cases disagree")
        check(a.case_id in case_ids, f"{a.case_id} not in case_ids")

        g = f["cases"][a.case_id]
        check(g.attrs["case_id"] == a.case_id, "case_id attribute differs from the group name")
        image = g["image"][()]
        label = g["label"][()]
        inst = g["instances"][()]
        affine = g.attrs["affine"]
        spacing = g.attrs["spacing_mm"]
        check([str(s) for s in g["image"].attrs["axes"]] == ["channel", "k", "j", "i"],
              "image axes attribute")
        check(list(g["image"].attrs["channel_names"]) == list(root["channel_names"]),
              "image channel_names differ from the root's")
        check(image.shape[0] == len(a.images),
              f"image has {image.shape[0]} channels, {len(a.images)} NIfTI files given")

        for c, path in enumerate(a.images):
            img, vox = nifti(path)
            check(image.dtype == vox.dtype, f"channel {c}: dtype {image.dtype} vs NIfTI {vox.dtype}")
            check(image[c].shape == vox.shape[::-1], f"channel {c}: shape {image[c].shape} vs "
                  f"NIfTI {vox.shape} reversed")
            check(np.array_equal(image[c], vox.transpose(2, 1, 0)),
                  f"channel {c}: voxels differ from {path}")
            check(np.array_equal(affine.astype(np.float32), img.get_sform().astype(np.float32)),
                  f"channel {c}: affine {affine.tolist()} != sform {img.get_sform().tolist()}")
            check(np.array_equal(spacing.astype(np.float32),
                                 np.asarray(img.header.get_zooms()[:3], dtype=np.float32)),
                  f"channel {c}: spacing_mm {spacing} != pixdim {img.header.get_zooms()}")
        for name, arr, path in (("label", label, a.label), ("instances", inst, a.instances)):
            img, vox = nifti(path)
            check(arr.dtype == vox.dtype, f"{name}: dtype {arr.dtype} vs NIfTI {vox.dtype}")
            check(np.array_equal(arr, vox.transpose(2, 1, 0)), f"{name}: voxels differ from {path}")
            check(np.array_equal(affine.astype(np.float32), img.get_sform().astype(np.float32)),
                  f"{name}: affine differs from the sform")

        les = g["lesions"][()]
        ids = sorted(int(x) for x in np.unique(inst) if x != 0)
        check(sorted(int(x) for x in les["instance_id"]) == ids,
              f"lesion table ids {list(les['instance_id'])} vs instance map {ids}")
        check(int(g.attrs["n_lesions"]) == len(les), "n_lesions differs from the table's rows")
        ijk_inst = inst.transpose(2, 1, 0)  # back to NIfTI (i, j, k) order
        for row in les:
            lid = int(row["instance_id"])
            where = np.argwhere(ijk_inst == lid)
            check(int(row["voxel_count"]) == len(where), f"lesion {lid}: voxel_count")
            check(np.array_equal(row["bbox_min_vox"], where.min(axis=0)), f"lesion {lid}: bbox_min")
            check(np.array_equal(row["bbox_max_vox"], where.max(axis=0)), f"lesion {lid}: bbox_max")
            world = affine @ np.append(row["centroid_vox"], 1.0)
            # Both sides are the same double arithmetic up to summation order: 1e-9 mm.
            check(np.allclose(world[:3], row["centroid_mm"], rtol=0, atol=1e-9),
                  f"lesion {lid}: centroid_mm {row['centroid_mm']} != affine @ centroid_vox {world[:3]}")
            check(len(row["label_voxels"]) == len(label_names), f"lesion {lid}: label_voxels length")
            lab = int(row["label"])
            check(0 <= lab < len(label_names), f"lesion {lid}: label {lab} outside the dictionary")

    if problems:
        for p in problems:
            print(f"check_hdf5: {a.h5}: {a.case_id}: {p}")
        return 1
    print(f"check_hdf5: OK {a.h5} {a.case_id}: {len(a.images)} channel(s), label, instances, "
          f"{len(les)} lesion(s) equal to the NIfTI files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
