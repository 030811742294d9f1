"""Dataset manifests: which cases, where their images and labels are, and a patient-level split.

A manifest (YAML or JSON) declares `name`, `format`, `modality`, `root` (relative to the manifest
file), the label names, and cases with `patient` ids and `split`s. Formats:
- `nifti-folder`: cases list `image` and `labels` (NIfTI, DICOM folder/zip) paths under `root`;
  label names from `label_map` ({"file": ..., "key": ...}) or inline `labels` {id: name}.
- `nnunet`: `root` holds dataset.json, imagesTr/<case>_0000.nii.gz, labelsTr/<case>.nii.gz.
- `png2d`: SAM-Med2D style `images/<stem>.png` + `masks/<stem>_<label>_<instance>.png`.
A patient may appear in only one split; the suite refuses a manifest that mixes them.
`absent_structures` lists structures outside every case's field of view: training uses them as
known negatives (a partially labelled dataset says nothing about its other unlabelled structures).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from limis import vocab
from limis.errors import LimisError

FORMATS = ("nifti-folder", "nnunet", "png2d")


@dataclass(frozen=True)
class Case:
    """One image with its reference; `masks` (png2d) maps structure -> instance mask files."""

    case_id: str
    patient: str
    split: str
    image: Path
    labels: Path | None = None
    masks: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    view: str = "radiological"


@dataclass(frozen=True)
class Manifest:
    name: str
    format: str
    modality: str
    path: Path
    label_names: dict[int, str]
    cases: tuple[Case, ...]
    absent: tuple[str, ...] = ()  # structures outside every case's field of view (canonical names)

    def split(self, name: str) -> list[Case]:
        """Cases of one split, or of several given as "fold0,fold1" (cross-validation)."""
        wanted = [part.strip() for part in name.split(",") if part.strip()]
        splits = sorted({c.split for c in self.cases})
        unknown = [part for part in wanted if part not in splits]
        if unknown or not wanted:
            raise LimisError(f"{self.path}: no case in split '{', '.join(unknown) or name}'; it has: {', '.join(splits)}.")
        return [c for c in self.cases if c.split in wanted]


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; paths resolve relative to the manifest file."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise LimisError(f"{path}: not a readable YAML/JSON manifest ({type(error).__name__}).") from error
    if not isinstance(spec, dict) or spec.get("format") not in FORMATS:
        raise LimisError(f"{path}: the manifest needs 'format' set to one of: {', '.join(FORMATS)}.")
    root = (path.parent / os.path.expandvars(str(spec.get("root", ".")))).resolve()
    if not root.exists():
        raise LimisError(f"{path}: data root {root} does not exist; download the dataset there or set the variable in 'root'.")
    reader = {"nifti-folder": _nifti_folder, "nnunet": _nnunet, "png2d": _png2d}[spec["format"]]
    names, cases = reader(spec, root, path)
    manifest = Manifest(spec.get("name", path.stem), spec["format"], spec.get("modality", "CT"), path, names, tuple(cases),
                        _absent(spec, path))
    check_patient_split(manifest)
    return manifest


def _absent(spec: dict, path: Path) -> tuple[str, ...]:
    """`absent_structures`: canonical names no case contains (e.g. brain on abdominal CT), checked against the vocabulary."""
    names = [str(n) for n in spec.get("absent_structures") or []]
    for name in names:
        try:
            vocab.get_structure(name)
        except LimisError as error:
            raise LimisError(f"{path}: absent_structures entry '{name}' is not a canonical structure name.") from error
    return tuple(names)


def check_patient_split(manifest: Manifest) -> None:
    """Refuse a manifest in which one patient's cases sit in different splits."""
    seen: dict[str, str] = {}
    for case in manifest.cases:
        if seen.setdefault(case.patient, case.split) != case.split:
            raise LimisError(
                f"{manifest.path}: patient '{case.patient}' is in splits '{seen[case.patient]}' and '{case.split}'; "
                "splits must be patient-level."
            )


def _splits_by_patient(spec: dict) -> dict[str, str]:
    return {str(p): split for split, patients in (spec.get("splits") or {}).items() for p in patients}


def _case_split(spec: dict, patient: str, explicit: str | None) -> str:
    return explicit or _splits_by_patient(spec).get(patient) or spec.get("default_split", "test")


def _label_names(spec: dict, root: Path, manifest: Path) -> dict[int, str]:
    from limis.pipeline.registry import read_label_names

    if "labels" in spec:
        return vocab.canonical_label_names({int(k): str(v) for k, v in spec["labels"].items() if int(k) != 0})
    if "label_set" in spec:
        return vocab.label_set(spec["label_set"])
    label_map = spec.get("label_map")
    if not label_map:
        raise LimisError(f"{manifest}: give 'labels' {{id: name}} or 'label_map' {{file, key}}.")
    return read_label_names(root / label_map["file"], label_map.get("key"))


def _nifti_folder(spec: dict, root: Path, manifest: Path) -> tuple[dict[int, str], list[Case]]:
    cases = []
    for entry in spec.get("cases", []):
        patient = str(entry.get("patient", entry["id"]))
        cases.append(Case(str(entry["id"]), patient, _case_split(spec, patient, entry.get("split")),
                          root / entry["image"], root / entry["labels"] if entry.get("labels") else None))
    return _label_names(spec, root, manifest), cases


def _nnunet(spec: dict, root: Path, manifest: Path) -> tuple[dict[int, str], list[Case]]:
    dataset = json.loads((root / "dataset.json").read_text())
    labels = dataset["labels"]
    # nnU-Net v2 maps name -> id; v1-style files (AMOS, MSD) map "id" -> name; the manifest may override both
    pairs = labels.items() if all(str(k).isdigit() for k in labels) else ((v, k) for k, v in labels.items())
    names = (_label_names(spec, root, manifest) if {"labels", "label_set"} & set(spec)
             else vocab.canonical_label_names({int(i): str(n) for i, n in pairs if int(i) != 0}))
    patients = spec.get("patients", {})
    cases = []
    for label_file in sorted((root / "labelsTr").glob("*.nii.gz")):
        case_id = label_file.name[: -len(".nii.gz")]
        patient = str(patients.get(case_id, case_id))
        image = root / "imagesTr" / f"{case_id}_0000.nii.gz"
        image = image if image.exists() else root / "imagesTr" / label_file.name
        cases.append(Case(case_id, patient, _case_split(spec, patient, None), image, label_file))
    return names, cases


def _png2d(spec: dict, root: Path, manifest: Path) -> tuple[dict[int, str], list[Case]]:
    structures = sorted({str(s) for s in spec.get("structures", [])})
    views = spec.get("views", {})
    patients = spec.get("patients", {})
    cases = []
    for image in sorted((root / "images").glob("*.png")):
        masks: dict[str, list[Path]] = {}
        for mask in sorted((root / "masks").glob(f"{image.stem}_*.png")):
            label = mask.stem[len(image.stem) + 1 :].rsplit("_", 1)[0]
            masks.setdefault(label, []).append(mask)
        if not masks:
            continue
        patient = str(patients.get(image.stem, image.stem.rsplit("_", 1)[0]))
        cases.append(Case(image.stem, patient, _case_split(spec, patient, None), image, None,
                          {k: tuple(v) for k, v in masks.items()}, views.get(image.stem, "radiological")))
    names = {i: name for i, name in enumerate(structures or sorted({k for c in cases for k in c.masks}), start=1)}
    return names, cases
