#!/usr/bin/env python3
"""check_dataset.py DIR: an independent check of a raresynth dataset.

Uses only nibabel, numpy, json and hashlib (no raresynth code), so it catches errors that
the library's own `validate` would share with the writer. It re-implements the measurement
definitions of docs/manifest.md (section 4, "Lesion records") and checks, for every case:

- every channel, the label map and the instance map exist and load with nibabel;
- equal shapes and affines between channels, label map and instance map;
- NIfTI headers: magic n+1, vox_offset 352, no extensions, qform_code == sform_code == 1 with
  equal transforms, spatial units mm, descrip exactly "raresynth <version>", aux_file,
  intent_name and db_name empty;
- label and instance maps: integer datatype, intent code 1002, scl_slope 1 (or 0/unset),
  scl_inter 0, cal_min 0, cal_max = largest value; label values within the declared labels;
- images: no NaN or infinity;
- the per-case manifest's lesion records against the voxels: voxel_count, volume_mm3, mass
  voxel count and volume (perilesional labels from the manifest's labels_perilesional left
  out), centroid (voxel and mm through the affine), bounding box, cccwhd box, RECIST long/short
  axis on the mass, key slice, slice range, equivalent diameter, compartment voxel counts
  (tolerance 1e-3 mm); type, disease and lesion_type consistent; n_lesions of raresynth.json
  against each manifest;
- nnU-Net dataset.json required keys, labels consecutive from 0, numTraining, no stray images;
- SHA-256 of every file against raresynth.json.

Prints one line per problem and exits 1 on any; on success prints
"check_dataset: N cases, M files, 0 problems".
"""
import hashlib
import json
import math
import os
import re
import sys

import nibabel as nib
import numpy as np

TOL_MM = 1e-3  # lengths, positions (mm) and voxel-unit centroids
TOL_REL = 1e-6  # volumes (relative)
QS_TOL_MM = 1e-4  # qform vs sform
NII = ".nii.gz"
DESCRIP_RE = re.compile(r"^raresynth [0-9A-Za-z.+-]+$")
NNUNET_RE = re.compile(r"^Dataset[0-9]{3}_[A-Za-z0-9]+$")
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


class Checker:
    def __init__(self, root):
        self.root = root.rstrip("/")
        self.problems = 0
        self.files = 0
        self.cases = 0

    def problem(self, rel, msg):
        where = f"{self.root}/{rel}" if rel else self.root
        print(f"{where}: {msg}")
        self.problems += 1

    def path(self, rel):
        return os.path.join(self.root, rel)

    def load_json(self, rel):
        try:
            with open(self.path(rel), "rb") as f:
                doc = json.load(f)
        except FileNotFoundError:
            self.problem(rel, "missing")
            return None
        except (OSError, ValueError) as exc:
            self.problem(rel, f"unreadable JSON: {exc}")
            return None
        self.files += 1
        if not isinstance(doc, dict):
            self.problem(rel, "top level is not an object")
            return None
        return doc

    def load_nifti(self, rel, what):
        if not os.path.isfile(self.path(rel)):
            self.problem(rel, f"missing ({what})")
            return None
        try:
            img = nib.load(self.path(rel))
        except Exception as exc:  # nibabel raises several types for broken files
            self.problem(rel, f"cannot be read by nibabel ({what}): {exc}")
            return None
        self.files += 1
        return img

    # ---- NIfTI headers ---------------------------------------------------------------------
    def check_header(self, rel, img, label):
        hdr = img.header
        if hdr["magic"].tobytes() != b"n+1\x00":
            self.problem(rel, f"magic {hdr['magic'].tobytes()!r} (need n+1)")
        if int(hdr["sizeof_hdr"]) != 348:
            self.problem(rel, f"sizeof_hdr {int(hdr['sizeof_hdr'])} (need 348)")
        # nibabel resets the in-memory header's vox_offset; the proxy keeps the file's.
        if int(img.dataobj.offset) != 352:
            self.problem(rel, f"vox_offset {int(img.dataobj.offset)} (need 352)")
        if len(hdr.extensions) != 0:
            self.problem(rel, f"{len(hdr.extensions)} header extension(s) (need none)")
        qc, sc = int(hdr["qform_code"]), int(hdr["sform_code"])
        if qc != 1 or sc != 1:
            self.problem(rel, f"qform_code {qc}, sform_code {sc} (need both 1)")
        if not np.allclose(hdr.get_qform(), hdr.get_sform(), rtol=0, atol=QS_TOL_MM):
            self.problem(rel, "qform and sform affines differ")
        if hdr.get_xyzt_units()[0] != "mm":
            self.problem(rel, f"spatial units {hdr.get_xyzt_units()[0]!r} (need mm)")
        descrip = hdr["descrip"].tobytes().split(b"\x00")[0].decode("latin-1")
        if not DESCRIP_RE.match(descrip):
            self.problem(rel, f"descrip {descrip!r} holds more than 'raresynth <version>'")
        for key in ("aux_file", "intent_name", "db_name"):
            if hdr[key].tobytes().strip(b"\x00 "):
                self.problem(rel, f"{key} is not empty")
        if not label:
            return
        if hdr.get_data_dtype().kind not in "iu":
            self.problem(rel, f"label datatype {hdr.get_data_dtype()} is not an integer type")
        if int(hdr["intent_code"]) != 1002:
            self.problem(rel, f"intent_code {int(hdr['intent_code'])} (need 1002)")
        slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
        if not (math.isnan(slope) or slope in (0.0, 1.0)):
            self.problem(rel, f"scl_slope {slope} (need 1 or 0)")
        if not (math.isnan(inter) or inter == 0.0):
            self.problem(rel, f"scl_inter {inter} (need 0)")

    def check_cal(self, rel, img, data):
        hdr = img.header
        top = float(data.max()) if data.size else 0.0
        if float(hdr["cal_min"]) != 0.0 or float(hdr["cal_max"]) != top:
            self.problem(rel, f"cal_min {float(hdr['cal_min'])}, cal_max "
                              f"{float(hdr['cal_max'])} (need 0 and {top})")

    # ---- checksums -------------------------------------------------------------------------
    def sha256(self, rel):
        h = hashlib.sha256()
        with open(self.path(rel), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()


# ---- measurements (docs/manifest.md, section 4) ---------------------------------
def boundary_points(sl, i0, j0):
    """In-plane boundary voxels of a 2-D mask indexed [i, j] whose corner is voxel (i0, j0),
    as absolute indices in scan order (j outer, i inner)."""
    p = np.pad(sl, 1, constant_values=False)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    jj, ii = np.nonzero((sl & ~interior).T)
    return ii.astype(np.int64) + int(i0), jj.astype(np.int64) + int(j0)


def recist(mask, lo, hi, sx, sy):
    """Long axis, short axis and key slice of a voxel set (volume-sized mask [i, j, k] within
    the lesion box lo..hi), by the operations of docs/manifest.md section 4 in the same order,
    so the results agree with the writer bit for bit. Square pixels (sx == sy): comparisons
    and bins in voxel units from integers, so the float32 pixdim changes no tie or bin."""
    square = sx == sy
    best2, key, pa, pb = -1.0, int(lo[2]), None, None
    sub = mask[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, :]
    for k in range(int(lo[2]), int(hi[2]) + 1):
        ii, jj = boundary_points(sub[:, :, k], lo[0], lo[1])
        if ii.size == 0:
            continue
        if best2 < 0.0:
            best2, key = 0.0, k
        if ii.size < 2:
            continue
        di = ii[None, :] - ii[:, None]
        dj = jj[None, :] - jj[:, None]
        if square:
            d2 = (di * di + dj * dj).astype(np.float64)  # exact integers
        else:
            dx = di.astype(np.float64) * sx
            dy = dj.astype(np.float64) * sy
            d2 = dx * dx + dy * dy
        d2[np.tril_indices(ii.size)] = -1.0  # only pairs a < b
        flat = int(np.argmax(d2))  # first maximum in (a, b) order
        a, b = divmod(flat, ii.size)
        if d2[a, b] > best2:
            best2, key = float(d2[a, b]), k
            pa, pb = (ii[a], jj[a]), (ii[b], jj[b])
    if not best2 > 0.0:
        return 0.0, 0.0, key
    length = math.sqrt(best2)
    unit = sx if square else 1.0
    long_mm = length * unit
    # Short axis: the longest chord perpendicular to the long axis on the key slice. Every
    # voxel centre of the set on that slice, relative to the long axis' first end a, is
    # projected on the unit vector u (along) and w = (-u_y, u_x) (across); bins along u of
    # width min(sx, sy), index floor(along / width + 0.5); chord = max - min across per bin.
    li, lj = int(pb[0] - pa[0]), int(pb[1] - pa[1])
    jj, ii = np.nonzero(sub[:, :, key].T)  # scan order, as boundary_points
    di = ii.astype(np.int64) + int(lo[0]) - int(pa[0])
    dj = jj.astype(np.int64) + int(lo[1]) - int(pa[1])
    if square:
        along = (di * li + dj * lj).astype(np.float64) / length
        across = (dj * li - di * lj).astype(np.float64) / length
        width = 1.0
    else:
        ux = float(li) * sx / length
        uy = float(lj) * sy / length
        wx, wy = -uy, ux
        dx = di.astype(np.float64) * sx
        dy = dj.astype(np.float64) * sy
        along = dx * ux + dy * uy
        across = dx * wx + dy * wy
        width = min(sx, sy)
    bins = np.floor(along / width + 0.5)
    short_mm = 0.0
    for b in np.unique(bins):
        sel = across[bins == b]
        short_mm = max(short_mm, float(sel.max() - sel.min()))
    return long_mm, short_mm * unit, key


def close(a, b, tol):
    return abs(float(a) - float(b)) <= tol


class CaseChecker:
    def __init__(self, ck, labels):
        self.ck = ck
        self.labels = labels  # name -> value

    def lesions(self, manrel, man, inst, lab, affine, zooms):
        ck = self.ck
        recs = man.get("lesions")
        if not isinstance(recs, list):
            ck.problem(manrel, "'lesions' missing or not a list")
            return
        # Perilesional labels (e.g. oedema) are left out of the mass, on which the RECIST axes
        # are measured; a lesion without mass voxel is measured whole.
        peri_names = man.get("labels_perilesional")
        if not isinstance(peri_names, list) or any(
                n not in self.labels or self.labels[n] == 0 for n in peri_names):
            ck.problem(manrel, f"labels_perilesional {peri_names!r} is not a list of declared "
                               f"non-background labels")
            return
        peri_values = [self.labels[n] for n in peri_names]
        perilesional = np.isin(lab, peri_values)
        sx, sy, sz = (float(z) for z in zooms)
        ids = [int(v) for v in np.unique(inst) if v != 0]
        seen = set()
        for n, rec in enumerate(recs):
            iid = rec.get("instance_id")
            tag = f"lesions[{n}] (instance {iid})"
            if not isinstance(iid, int) or iid not in ids:
                ck.problem(manrel, f"{tag}: no voxel with this id in the instance map")
                continue
            if iid in seen:
                ck.problem(manrel, f"{tag}: recorded twice")
                continue
            seen.add(iid)
            # The type name and its two parts (docs/manifest.md section 4).
            typ, dis, lt = rec.get("type"), rec.get("disease"), rec.get("lesion_type")
            if not isinstance(typ, str) or not typ:
                ck.problem(manrel, f"{tag}: type {typ!r} is not a non-empty string")
            elif (dis, lt) != (tuple(typ.split("/", 1)) if "/" in typ else (typ, typ)):
                ck.problem(manrel, f"{tag}: disease {dis!r} and lesion_type {lt!r} do not "
                                   f"match type {typ!r}")
            mask = inst == iid
            idx = np.argwhere(mask)
            count = idx.shape[0]
            vol = count * sx * sy * sz
            cvox = idx.mean(axis=0)
            cmm = (affine @ np.append(cvox, 1.0))[:3]
            lo, hi = idx.min(axis=0), idx.max(axis=0)
            centre = (affine @ np.append((lo + hi) / 2.0, 1.0))[:3]
            size = (hi - lo + 1) * np.array([sx, sy, sz])
            mass = mask & ~perilesional
            mass_count = int(np.count_nonzero(mass))
            long_mm, short_mm, key = recist(mass if mass_count else mask, lo, hi, sx, sy)
            mass_vol = mass_count * sx * sy * sz
            eqd = (6.0 * vol / math.pi) ** (1.0 / 3.0)

            def want(key_, got, ok):
                if not ok:
                    ck.problem(manrel, f"{tag}: {key_} is {rec.get(key_)!r} in the manifest, "
                                       f"{got} measured from the voxels")

            want("voxel_count", count, rec.get("voxel_count") == count)
            want("volume_mm3", vol, isinstance(rec.get("volume_mm3"), (int, float)) and
                 close(rec["volume_mm3"], vol, TOL_REL * max(vol, 1.0)))
            want("mass_voxel_count", mass_count, rec.get("mass_voxel_count") == mass_count)
            want("mass_volume_mm3", mass_vol,
                 isinstance(rec.get("mass_volume_mm3"), (int, float)) and
                 close(rec["mass_volume_mm3"], mass_vol, TOL_REL * max(mass_vol, 1.0)))
            for key_, ref in (("centroid_vox", cvox), ("centroid_mm", cmm),
                              ("box_cccwhd_mm", np.concatenate([centre, size]))):
                got = rec.get(key_)
                want(key_, list(ref), isinstance(got, list) and len(got) == len(ref) and
                     all(close(g, r, TOL_MM) for g, r in zip(got, ref)))
            want("bbox_min_vox", lo.tolist(), rec.get("bbox_min_vox") == lo.tolist())
            want("bbox_max_vox", hi.tolist(), rec.get("bbox_max_vox") == hi.tolist())
            for key_, ref in (("long_axis_mm", long_mm), ("short_axis_mm", short_mm),
                              ("equivalent_diameter_mm", eqd)):
                got = rec.get(key_)
                want(key_, ref, isinstance(got, (int, float)) and close(got, ref, TOL_MM))
            want("key_slice", key, rec.get("key_slice") == key)
            want("slice_range", [int(lo[2]), int(hi[2])],
                 rec.get("slice_range") == [int(lo[2]), int(hi[2])])
            comp = rec.get("compartments")
            if not isinstance(comp, dict):
                ck.problem(manrel, f"{tag}: compartments missing")
                continue
            lab_in = lab[mask]
            for name, value in self.labels.items():
                if value == 0:
                    continue
                n_vox = int(np.count_nonzero(lab_in == value))
                got = comp.get(name, {}).get("voxel_count", 0) if isinstance(
                    comp.get(name, {}), dict) else None
                if got != n_vox:
                    ck.problem(manrel, f"{tag}: compartments.{name}.voxel_count is {got!r}, "
                                       f"{n_vox} measured")
            for name in comp:
                if name not in self.labels or self.labels[name] == 0:
                    ck.problem(manrel, f"{tag}: compartment {name!r} is not a declared label")
        for iid in ids:
            if iid not in seen:
                ck.problem(manrel, f"instance {iid} is in the instance map but has no record")


def main(argv):
    if len(argv) != 2:
        print("usage: check_dataset.py DIR", file=sys.stderr)
        return 2
    ck = Checker(argv[1])
    if not os.path.isdir(ck.root):
        print(f"{ck.root}: not a directory")
        return 1
    ds = ck.load_json("raresynth.json")
    if ds is None:
        print(f"check_dataset: 0 cases, {ck.files} files, {ck.problems} problems")
        return 1
    if not os.path.isfile(ck.path(".raresynth")):
        ck.problem(".raresynth", "marker missing")

    nn = ds.get("nnunet_dir", "")
    if not isinstance(nn, str) or not NNUNET_RE.match(nn):
        ck.problem("raresynth.json", f"nnunet_dir {nn!r} is not DatasetNNN_Name")
        nn = ""
    cases = ds.get("cases") if isinstance(ds.get("cases"), list) else []
    ids = []
    for n, c in enumerate(cases):
        cid = c.get("case_id") if isinstance(c, dict) else None
        if not isinstance(cid, str) or not SAFE_ID_RE.match(cid):
            ck.problem("raresynth.json", f"cases[{n}].case_id {cid!r} unsafe or missing")
            continue
        ids.append(cid)
    if ds.get("n_cases") != len(cases):
        ck.problem("raresynth.json", f"n_cases {ds.get('n_cases')!r} != {len(cases)} listed")

    # nnU-Net dataset.json
    labels, channels = {}, {}
    djrel = f"{nn}/dataset.json"
    dj = ck.load_json(djrel) if nn else None
    if dj is not None:
        for key in ("channel_names", "labels", "numTraining", "file_ending"):
            if key not in dj:
                ck.problem(djrel, f"required key {key!r} missing")
        if "dataset" in dj:
            ck.problem(djrel, "has a key 'dataset' (switches nnU-Net to file lists)")
        if dj.get("file_ending") != NII:
            ck.problem(djrel, f"file_ending {dj.get('file_ending')!r} (need '{NII}')")
        if dj.get("numTraining") != len(ids):
            ck.problem(djrel, f"numTraining {dj.get('numTraining')!r} != {len(ids)} cases")
        labels = dj.get("labels") if isinstance(dj.get("labels"), dict) else {}
        channels = dj.get("channel_names") if isinstance(dj.get("channel_names"), dict) else {}
        values = sorted(v for v in labels.values() if isinstance(v, int))
        if labels.get("background") != 0 or values != list(range(len(labels))):
            ck.problem(djrel, f"labels must hold background 0 and values 0..N-1: {labels}")
        if sorted(channels) != [str(c) for c in range(len(channels))] or not channels:
            ck.problem(djrel, f"channel_names keys must be '0'..'C-1': {sorted(channels)}")
    n_ch = len(channels)
    declared = set(v for v in labels.values() if isinstance(v, int))

    # No stray images: nnU-Net takes every *.nii.gz in imagesTr as an image.
    img_re = re.compile(r"^(.+)_([0-9]{4})\.nii\.gz$")
    if nn and os.path.isdir(ck.path(f"{nn}/imagesTr")):
        for name in sorted(os.listdir(ck.path(f"{nn}/imagesTr"))):
            m = img_re.match(name)
            if not m or m.group(1) not in ids or int(m.group(2)) >= n_ch:
                ck.problem(f"{nn}/imagesTr", f"stray file {name}")

    cc = CaseChecker(ck, labels)
    for c in cases:
        cid = c.get("case_id") if isinstance(c, dict) else None
        if cid not in ids:
            continue
        ck.cases += 1
        # Checksums against raresynth.json.
        for f in c.get("files", []) + [{"path": c.get("manifest"),
                                        "sha256": c.get("manifest_sha256")}]:
            rel = f.get("path")
            if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
                ck.problem("raresynth.json", f"{cid}: unsafe file path {rel!r}")
                continue
            if os.path.isfile(ck.path(rel)) and ck.sha256(rel) != f.get("sha256"):
                ck.problem(rel, "SHA-256 differs from raresynth.json")
        if not nn:
            continue
        labrel = f"{nn}/labelsTr/{cid}{NII}"
        lab_img = ck.load_nifti(labrel, "label map")
        lab = None
        if lab_img is not None:
            ck.check_header(labrel, lab_img, True)
            lab = np.asarray(lab_img.dataobj.get_unscaled())
            ck.check_cal(labrel, lab_img, lab)
            bad = sorted(set(np.unique(lab).tolist()) - declared)
            if bad:
                ck.problem(labrel, f"label values {bad} not declared in dataset.json")
        for ch in range(n_ch):
            rel = f"{nn}/imagesTr/{cid}_{ch:04d}{NII}"
            img = ck.load_nifti(rel, f"channel {ch} ({channels.get(str(ch))})")
            if img is None:
                continue
            ck.check_header(rel, img, False)
            data = np.asanyarray(img.dataobj)
            if not np.all(np.isfinite(data)):
                ck.problem(rel, f"{int(np.count_nonzero(~np.isfinite(data)))} voxels NaN/Inf")
            if lab_img is not None:
                if img.shape != lab_img.shape:
                    ck.problem(rel, f"shape {img.shape} != label map {lab_img.shape}")
                elif not np.allclose(img.affine, lab_img.affine, rtol=0, atol=1e-6):
                    ck.problem(rel, "affine differs from the label map")
        instrel = f"instances/{cid}{NII}"
        inst_img = ck.load_nifti(instrel, "instance map")
        if inst_img is None or lab_img is None:
            continue
        ck.check_header(instrel, inst_img, True)
        inst = np.asarray(inst_img.dataobj.get_unscaled())
        ck.check_cal(instrel, inst_img, inst)
        if inst.shape != lab.shape or not np.allclose(inst_img.affine, lab_img.affine,
                                                      rtol=0, atol=1e-6):
            ck.problem(instrel, "shape or affine differs from the label map")
            continue
        manrel = f"manifests/{cid}.json"
        man = ck.load_json(manrel)
        if man is None:
            continue
        if man.get("labels") != labels:
            ck.problem(manrel, "labels differ from dataset.json")
        if man.get("labels_perilesional") != ds.get("labels_perilesional"):
            ck.problem(manrel, "labels_perilesional differs from raresynth.json")
        if isinstance(man.get("lesions"), list) and c.get("n_lesions") != len(man["lesions"]):
            ck.problem("raresynth.json", f"{cid}: n_lesions {c.get('n_lesions')!r} != "
                                         f"{len(man['lesions'])} records in {manrel}")
        cc.lesions(manrel, man, inst, lab, lab_img.affine,
                   lab_img.header.get_zooms()[:3])

    print(f"check_dataset: {ck.cases} cases, {ck.files} files, {ck.problems} problems")
    return 1 if ck.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
