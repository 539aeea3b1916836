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
- SHA-256 of every file against raresynth.json;
- the MSD / MONAI layout (msd/), read as monai.data.load_decathlon_datalist does (paths joined
  to the folder of dataset.json and normalised; "image" and "label" always, other keys only
  when the joined path exists), each file loaded with nibabel: keys and types of
  reference/formats.md, no empty "test", every path inside msd/, images and label maps with
  the nnU-Net files' bytes, boxes [cx, cy, cz, w, h, d] (cccwhd, RAS mm) recomputed from the
  instance map and box labels from the label map;
- the nnDetection layout (TaskNNN_Name/), by the rules nnDetection applies: dataset.json task,
  dim, labels without background, modalities; per case the channels, the instance map with
  values exactly 0..N and the {case}.json with keys exactly "1".."N" and integer classes, the
  same geometry for channels and mask, the lesions of instances/ renumbered in order, no '.'
  in case ids (a '.' in the absolute path is printed as a warning);
- the HDF5 file raresynth.json lists, read with h5py (docs/hdf5.md): its SHA-256, the root
  attributes, and per case image[c, k, j, i] == NIfTI[i, j, k] for every channel, label and
  instance map, spacing and affine, the lesion table against the instance map;
- previews: one PNG per case (signature, IHDR 8-bit RGB, IEND; decoded with Pillow when it is
  installed).

Prints one line per problem and exits 1 on any; on success prints
"check_dataset: N cases, M files, 0 problems".
"""
import hashlib
import json
import math
import os
import re
import struct
import sys
import zlib

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


# ---- detection classes (docs/manifest.md, "MSD / MONAI") ------------------------------
def main_label(lab_in, labels, peri_values):
    """The lesion's main label from the label values of its voxels: the non-perilesional,
    non-background label holding most voxels (ties to the lower value); else the same over the
    perilesional labels; 0 if none."""
    for perilesional in (False, True):
        best, most = 0, 0
        for value in sorted(v for v in labels.values() if v != 0):
            if (value in peri_values) != perilesional:
                continue
            n = int(np.count_nonzero(lab_in == value))
            if n > most:
                best, most = value, n
        if best:
            return best
    return 0


def box_cccwhd(mask, affine, zooms):
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    centre = (affine @ np.append((lo + hi) / 2.0, 1.0))[:3]
    return np.concatenate([centre, (hi - lo + 1) * np.asarray(zooms, dtype=float)])


def consecutive_keys(obj):
    return isinstance(obj, dict) and sorted(obj, key=lambda k: (len(k), k)) == [
        str(i) for i in range(len(obj))]


def same_bytes(ck, rel, src):
    a, b = ck.path(rel), ck.path(src)
    if os.path.samefile(a, b):
        return True
    return ck.sha256(rel) == ck.sha256(src)


def inside(ck, sub, path):
    """Is the normalised absolute path inside ck.root/sub (symbolic links resolved)?"""
    base = os.path.realpath(ck.path(sub))
    real = os.path.realpath(path)
    return real == base or real.startswith(base + os.sep)


class Layouts:
    """The MSD / MONAI and nnDetection layouts, the HDF5 file and the previews, checked case by
    case with the arrays the main loop loaded."""

    def __init__(self, ck, ds, nn, ids, labels, channels, order):
        self.ck, self.ds, self.nn, self.ids = ck, ds, nn, ids
        self.labels, self.channels = labels, channels
        self.order = order  # case ids in index order
        outputs = ds.get("outputs") if isinstance(ds.get("outputs"), dict) else {}
        layouts = outputs.get("layouts") if isinstance(outputs.get("layouts"), dict) else {}
        self.msd = None
        self.nd = None
        self.nd_dir = layouts.get("nndet")
        self.previews = outputs.get("previews") is True
        if "msd" in layouts or os.path.isdir(ck.path("msd")):
            self.msd = self.msd_dataset()
        if self.nd_dir is None:
            dirs = [d for d in os.listdir(ck.root) if d.startswith("Task") and
                    os.path.isdir(ck.path(d))]
            self.nd_dir = dirs[0] if dirs else None
        if self.nd_dir is not None:
            self.nd = self.nndet_dataset()
        self.h5 = None
        if "hdf5" in (outputs.get("formats") or []) or "hdf5" in ds:
            self.h5 = self.hdf5_open()

    # ---- MSD ----------------------------------------------------------------------------
    def msd_dataset(self):
        ck, rel = self.ck, "msd/dataset.json"
        dj = ck.load_json(rel)
        if dj is None:
            return None
        for key in ("name", "description", "reference", "licence", "release"):
            if not isinstance(dj.get(key), str):
                ck.problem(rel, f"{key!r} missing or not a string")
        if dj.get("tensorImageSize") != "3D":
            ck.problem(rel, f"tensorImageSize {dj.get('tensorImageSize')!r} (need '3D')")
        if "test" in dj and (not isinstance(dj["test"], list) or not dj["test"]):
            ck.problem(rel, "an empty 'test' list crashes MONAI's DecathlonDataset")
        if dj.get("box_mode") != "cccwhd":
            ck.problem(rel, f"box_mode {dj.get('box_mode')!r} (need 'cccwhd')")
        if "RAS" not in str(dj.get("coordinate_system")):
            ck.problem(rel, f"coordinate_system {dj.get('coordinate_system')!r} does not state RAS")
        want_labels = {str(v): n for n, v in self.labels.items()}
        if dj.get("labels") != want_labels:
            ck.problem(rel, f"labels {dj.get('labels')!r} are not the value -> name dictionary "
                            f"{want_labels!r}")
        if dj.get("modality") != self.channels:
            ck.problem(rel, f"modality {dj.get('modality')!r} != channel_names {self.channels!r}")
        want_classes = {str(v - 1): n for n, v in self.labels.items() if v != 0}
        if dj.get("box_labels") != want_classes:
            ck.problem(rel, f"box_labels {dj.get('box_labels')!r} != {want_classes!r}")
        training = dj.get("training")
        if not isinstance(training, list) or dj.get("numTraining") != len(training):
            ck.problem(rel, "numTraining is not the length of 'training'")
            return None
        if len(training) != len(self.ids):
            ck.problem(rel, f"training lists {len(training)} cases, the dataset {len(self.ids)}")
        # monai.data.load_decathlon_datalist(rel, is_segmentation=True, "training"): the base
        # directory is the folder of dataset.json; "image" and "label" are joined to it and
        # normalised; any other key only if the joined path exists (so boxes stay numbers).
        base = ck.path("msd")
        by_case = {}
        for n, item in enumerate(training):
            if not isinstance(item, dict):
                ck.problem(rel, f"training[{n}] is not an object")
                continue
            loaded = {}
            for k, v in item.items():
                if k in ("image", "label"):
                    vs = v if isinstance(v, list) else [v]
                    if not all(isinstance(x, str) for x in vs):
                        ck.problem(rel, f"training[{n}].{k} is not a path or a list of paths")
                        continue
                    paths = []
                    for x in vs:
                        pth = os.path.normpath(os.path.join(base, x))
                        if os.path.isabs(x) or not inside(ck, "msd", pth):
                            ck.problem(rel, f"training[{n}].{k} {x!r} leaves msd/ (not read)")
                            pth = None
                        paths.append(pth)
                    loaded[k] = paths
                else:
                    loaded[k] = v
            label = (loaded.get("label") or [None])[0]
            cid = os.path.basename(label)[:-len(NII)] if label and label.endswith(NII) else None
            if cid not in self.ids:
                ck.problem(rel, f"training[{n}].label {item.get('label')!r} is no case's label map")
                continue
            if cid in by_case:
                ck.problem(rel, f"training[{n}]: case {cid} listed twice")
                continue
            by_case[cid] = (n, item, loaded)
        return by_case

    def msd_case(self, cid, lab, inst, affine, zooms, peri_values):
        ck, rel = self.ck, "msd/dataset.json"
        if cid not in self.msd:
            ck.problem(rel, f"case {cid} is missing from 'training'")
            return
        n, item, loaded = self.msd[cid]
        images = loaded.get("image", [])
        if len(images) != len(self.channels):
            ck.problem(rel, f"training[{n}].image lists {len(images)} files, need "
                            f"{len(self.channels)} channels")
        for c, pth in enumerate(images):
            if pth is None:
                continue
            src = f"{self.nn}/imagesTr/{cid}_{c:04d}{NII}"
            relp = os.path.relpath(pth, ck.root)
            if not os.path.isfile(pth):
                ck.problem(relp, f"missing (training[{n}].image[{c}])")
                continue
            img = nib.load(pth)  # what LoadImaged does, with the nibabel reader
            if img.shape != lab.shape:
                ck.problem(relp, f"shape {img.shape} != label map {lab.shape}")
            if not same_bytes(ck, relp, src):
                ck.problem(relp, f"differs from {src}")
        for pth in loaded.get("label", []):
            if pth is None:
                continue
            relp = os.path.relpath(pth, ck.root)
            if not os.path.isfile(pth):
                ck.problem(relp, f"missing (training[{n}].label)")
            elif not same_bytes(ck, relp, f"{self.nn}/labelsTr/{cid}{NII}"):
                ck.problem(relp, f"differs from {self.nn}/labelsTr/{cid}{NII}")
        boxes, classes = item.get("box"), item.get("box_label")
        ids = [int(v) for v in np.unique(inst) if v != 0]
        if not isinstance(boxes, list) or not isinstance(classes, list) or \
                len(boxes) != len(ids) or len(classes) != len(ids):
            ck.problem(rel, f"training[{n}] ({cid}): need one box and one box_label per lesion "
                            f"({len(ids)})")
            return
        for k, iid in enumerate(ids):
            mask = inst == iid
            want = box_cccwhd(mask, affine, zooms)
            got = boxes[k]
            if not (isinstance(got, list) and len(got) == 6 and
                    all(close(g, w, TOL_MM) for g, w in zip(got, want))):
                ck.problem(rel, f"training[{n}].box[{k}] ({cid}) is {got!r}, instance {iid} "
                                f"measures {[round(float(x), 4) for x in want]}")
            cls = max(main_label(lab[mask], self.labels, peri_values) - 1, 0)
            if type(classes[k]) is not int or classes[k] != cls:
                ck.problem(rel, f"training[{n}].box_label[{k}] ({cid}) is {classes[k]!r}, "
                                f"instance {iid} is class {cls}")

    # ---- nnDetection --------------------------------------------------------------------
    def nndet_dataset(self):
        ck, d = self.ck, self.nd_dir
        rel = f"{d}/dataset.json"
        if not re.match(r"^Task[0-9]{3}_[A-Za-z0-9]+$", d):
            ck.problem(d, "not TaskNNN_Name")
        if "." in os.path.realpath(ck.path(d)):
            print(f"{ck.path(d)}: warning: the absolute path holds a '.', which nnDetection "
                  f"cannot handle")
        dj = ck.load_json(rel)
        if dj is None:
            return None
        if dj.get("task") != d:
            ck.problem(rel, f"task {dj.get('task')!r} is not the folder name {d!r}")
        if dj.get("dim") != 3 or type(dj.get("dim")) is not int:
            ck.problem(rel, f"dim {dj.get('dim')!r} (need 3)")
        labels = dj.get("labels")
        if not consecutive_keys(labels) or not all(isinstance(v, str) for v in labels.values()):
            ck.problem(rel, f"labels {labels!r}: need string keys '0'..'K-1' and names")
            labels = {}
        if "background" in labels.values():
            ck.problem(rel, "labels hold 'background' (nnDetection classes have none)")
        want = {str(v - 1): n for n, v in self.labels.items() if v != 0}
        if labels and labels != want:
            ck.problem(rel, f"labels {labels!r} != the non-background labels {want!r}")
        if dj.get("modalities") != self.channels:
            ck.problem(rel, f"modalities {dj.get('modalities')!r} != {self.channels!r}")
        for sub, pat in (("imagesTr", r"^(.+)_([0-9]{4})\.nii\.gz$"),
                         ("labelsTr", r"^(.+)\.(nii\.gz|json)$")):
            folder = ck.path(f"{d}/raw_splitted/{sub}")
            if not os.path.isdir(folder):
                ck.problem(f"{d}/raw_splitted/{sub}", "missing")
                continue
            for name in sorted(os.listdir(folder)):
                m = re.match(pat, name)
                if not m or m.group(1) not in self.ids:
                    ck.problem(f"{d}/raw_splitted/{sub}", f"stray file {name}")
        return {int(k): v for k, v in labels.items()}

    def nndet_case(self, cid, lab_img, lab, inst, peri_values):
        ck, d = self.ck, self.nd_dir
        if "." in cid:
            ck.problem(f"{d}/raw_splitted", f"case id {cid!r} holds a '.'")
        for c in range(len(self.channels)):
            relp = f"{d}/raw_splitted/imagesTr/{cid}_{c:04d}{NII}"
            if not os.path.isfile(ck.path(relp)):
                ck.problem(relp, "missing")
            elif not same_bytes(ck, relp, f"{self.nn}/imagesTr/{cid}_{c:04d}{NII}"):
                ck.problem(relp, f"differs from {self.nn}/imagesTr/{cid}_{c:04d}{NII}")
        jrel = f"{d}/raw_splitted/labelsTr/{cid}.json"
        cj = ck.load_json(jrel)
        mrel = f"{d}/raw_splitted/labelsTr/{cid}{NII}"
        mimg = ck.load_nifti(mrel, "nnDetection instance map")
        if cj is None or mimg is None:
            return
        ck.check_header(mrel, mimg, True)
        inst_nd = np.asarray(mimg.dataobj.get_unscaled())
        instances = cj.get("instances")
        n = len(instances) if isinstance(instances, dict) else -1
        if n < 0 or sorted(instances, key=lambda k: (len(k), k)) != [str(i) for i in
                                                                     range(1, n + 1)]:
            ck.problem(jrel, f"instances keys must be exactly '1'..'N': {instances!r}")
            return
        for k, v in instances.items():
            if type(v) is not int or v not in self.nd:
                ck.problem(jrel, f"instances[{k!r}] = {v!r} is not an integer class key "
                                 f"{sorted(self.nd)}")
        values = sorted(int(x) for x in np.unique(inst_nd))
        if values != list(range(0, n + 1)) and not (n == 0 and values == [0]):
            ck.problem(mrel, f"values {values[:10]} are not exactly 0..{n}")
        # SimpleITK's view: size, origin, direction and spacing of mask and channels equal.
        hdr_m, hdr_l = mimg.header, lab_img.header
        if mimg.shape != lab_img.shape or not np.array_equal(hdr_m.get_sform(), hdr_l.get_sform()) \
                or not np.array_equal(hdr_m.get_qform(), hdr_l.get_qform()) \
                or hdr_m.get_zooms()[:3] != hdr_l.get_zooms()[:3]:
            ck.problem(mrel, "size, origin, direction or spacing differs from the channels")
            return
        # The lesions of instances/ renumbered 1..N in order, each with its class.
        ids = [int(v) for v in np.unique(inst) if v != 0]
        expect = np.zeros_like(inst_nd)
        for k, iid in enumerate(ids):
            expect[inst == iid] = k + 1
        if len(ids) != n or not np.array_equal(expect, inst_nd):
            ck.problem(mrel, f"is not the {len(ids)} lesions of instances/{cid}{NII} renumbered "
                             f"1..N")
            return
        for k, iid in enumerate(ids):
            cls = max(main_label(lab[inst == iid], self.labels, peri_values) - 1, 0)
            if instances.get(str(k + 1)) != cls:
                ck.problem(jrel, f"instances['{k + 1}'] = {instances.get(str(k + 1))!r}, the "
                                 f"lesion is class {cls}")

    # ---- HDF5 ---------------------------------------------------------------------------
    def hdf5_open(self):
        import h5py
        ck, entry = self.ck, self.ds.get("hdf5")
        rel = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
            ck.problem("raresynth.json", f"hdf5 entry {entry!r} has no safe path")
            return None
        if not os.path.isfile(ck.path(rel)):
            ck.problem(rel, "missing (listed in raresynth.json)")
            return None
        if ck.sha256(rel) != entry.get("sha256"):
            ck.problem(rel, "SHA-256 differs from raresynth.json")
            return None
        self.h5rel = rel
        f = h5py.File(ck.path(rel), "r")
        ck.files += 1
        a = f.attrs
        for key in ("format", "generator", "generator_version", "dataset_name", "recipe_sha256",
                    "dataset_seed", "modality", "labels", "coordinate_system", "index_order",
                    "data_sources"):
            if not isinstance(a.get(key), str):
                ck.problem(rel, f"root attribute {key} is not read as str")
        if a.get("format") != "raresynth-hdf5" or int(a.get("format_version", 0)) != 1:
            ck.problem(rel, "format is not raresynth-hdf5 version 1")
        if "No patient data" not in str(a.get("data_sources")):
            ck.problem(rel, "data_sources lacks the no-patient-data statement")
        if json.loads(a.get("labels", "null")) != self.labels:
            ck.problem(rel, "root attribute labels differs from dataset.json")
        if [str(x) for x in a.get("label_names", [])] != sorted(self.labels, key=self.labels.get):
            ck.problem(rel, "label_names differ from the label dictionary")
        if [str(x) for x in a.get("channel_names", [])] != \
                [self.channels[str(c)] for c in range(len(self.channels))]:
            ck.problem(rel, "channel_names differ from dataset.json")
        if [str(x) for x in a.get("case_ids", [])] != self.order or \
                int(a.get("n_cases", -1)) != len(self.order):
            ck.problem(rel, "case_ids / n_cases are not the dataset's cases in index order")
        return f

    def hdf5_case(self, cid, images, lab_img, lab, inst, peri_values):
        ck, rel, f = self.ck, self.h5rel, self.h5
        if "cases" not in f or cid not in f["cases"]:
            ck.problem(rel, f"/cases/{cid} missing")
            return
        g = f["cases"][cid]
        img = g["image"]
        if img.shape != (len(images),) + lab.shape[::-1]:
            ck.problem(rel, f"/cases/{cid}/image shape {img.shape}")
            return
        for c, data in enumerate(images):
            # image[c, k, j, i] == nifti[i, j, k] (docs/hdf5.md, "Index order").
            if img.dtype != data.dtype or not np.array_equal(img[c], data.T):
                ck.problem(rel, f"/cases/{cid}/image[{c}] differs from the NIfTI channel {c}")
        for name, vol in (("label", lab), ("instances", inst)):
            if not np.array_equal(g[name][()], vol.T):
                ck.problem(rel, f"/cases/{cid}/{name} differs from the NIfTI file")
        aff = np.asarray(g.attrs["affine"], dtype=np.float64)
        if not np.array_equal(aff.astype(np.float32), lab_img.header.get_sform().astype(np.float32)):
            ck.problem(rel, f"/cases/{cid} affine differs from the NIfTI sform")
        sp = np.asarray(g.attrs["spacing_mm"]).astype(np.float32)
        if not np.array_equal(sp, np.asarray(lab_img.header.get_zooms()[:3], dtype=np.float32)):
            ck.problem(rel, f"/cases/{cid} spacing_mm differs from the NIfTI pixdim")
        rows = g["lesions"][()]
        ids = [int(v) for v in np.unique(inst) if v != 0]
        if len(rows) != len(ids) or int(g.attrs["n_lesions"]) != len(ids):
            ck.problem(rel, f"/cases/{cid}/lesions has {len(rows)} rows, {len(ids)} lesions")
            return
        for row, iid in zip(rows, ids):
            mask = inst == iid
            if int(row["instance_id"]) != iid or int(row["voxel_count"]) != int(mask.sum()) or \
                    int(row["label"]) != main_label(lab[mask], self.labels, peri_values):
                ck.problem(rel, f"/cases/{cid}/lesions row of instance {row['instance_id']} "
                                f"differs from the instance map")

    # ---- previews -----------------------------------------------------------------------
    def preview_case(self, cid):
        ck, rel = self.ck, f"previews/{cid}.png"
        if not os.path.isfile(ck.path(rel)):
            ck.problem(rel, "missing")
            return
        data = open(ck.path(rel), "rb").read()
        ck.files += 1
        if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 45:
            ck.problem(rel, "not a PNG file")
            return
        w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
        if struct.unpack(">I", data[29:33])[0] != zlib.crc32(data[12:29]):
            ck.problem(rel, "IHDR CRC mismatch")
        if depth != 8 or colour != 2 or not (0 < w <= 32768 and 0 < h <= 32768):
            ck.problem(rel, f"IHDR {w}x{h} depth {depth} colour {colour} (need 8-bit RGB)")
        if data[-12:] != b"\x00\x00\x00\x00IEND\xaeB`\x82":
            ck.problem(rel, "does not end with IEND")
        try:
            from PIL import Image
        except ImportError:
            return
        try:
            with Image.open(ck.path(rel)) as im:
                im.load()
                if im.mode != "RGB" or im.size != (w, h):
                    ck.problem(rel, f"Pillow reads mode {im.mode} size {im.size}")
        except Exception as exc:  # a corrupt stream raises various types
            ck.problem(rel, f"Pillow cannot decode it: {exc}")

    def case(self, cid, images, lab_img, lab, inst, peri_values):
        affine, zooms = lab_img.affine, lab_img.header.get_zooms()[:3]
        if self.msd is not None:
            self.msd_case(cid, lab, inst, affine, zooms, peri_values)
        if self.nd is not None:
            self.nndet_case(cid, lab_img, lab, inst, peri_values)
        if self.h5 is not None:
            self.hdf5_case(cid, images, lab_img, lab, inst, peri_values)
        if self.previews:
            self.preview_case(cid)


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

    order = sorted(ids, key=lambda i: int(i[5:]) if i[5:].isdigit() else -1)
    lay = Layouts(ck, ds, nn, ids, labels, channels, order)
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
        images = []
        for ch in range(n_ch):
            rel = f"{nn}/imagesTr/{cid}_{ch:04d}{NII}"
            img = ck.load_nifti(rel, f"channel {ch} ({channels.get(str(ch))})")
            if img is None:
                continue
            ck.check_header(rel, img, False)
            data = np.asanyarray(img.dataobj)
            images.append(np.asarray(img.dataobj.get_unscaled()))
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
        peri = man.get("labels_perilesional")
        peri_values = [labels[n] for n in peri if n in labels] if isinstance(peri, list) else []
        if len(images) == n_ch:
            lay.case(cid, images, lab_img, lab, inst, peri_values)

    print(f"check_dataset: {ck.cases} cases, {ck.files} files, {ck.problems} problems")
    return 1 if ck.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
