"""Tier-1 tests for the anatomy vocabulary: pure Python, no torch, no data files outside the package."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from limis.errors import PhraseRefusedError, VocabularyError
from limis.vocab import (
    Resolution,
    all_groups,
    all_structures,
    canonical_label_names,
    display_name,
    get_structure,
    label_set,
    label_set_names,
    resolve,
    resolve_many,
    suggest,
    synonyms_of,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
LEFT_LOBES = ("lung_upper_lobe_left", "lung_lower_lobe_left")
RIGHT_LOBES = ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right")
KIDNEYS = ("kidney_left", "kidney_right")
NAMES = {s.name for s in all_structures()}


# --------------------------------------------------------------------------- canonical names


@pytest.mark.parametrize("name", sorted(label_set("totalsegmentator_total").values()))
def test_every_totalsegmentator_name_resolves_to_itself(name: str) -> None:
    result = resolve(name)
    assert result.structures == (name,)
    assert result.kind == "structure"


def test_every_canonical_name_resolves_to_itself_or_its_parts() -> None:
    for structure in all_structures():
        result = resolve(structure.name)
        if result.structures != (structure.name,):
            # Only a composite spelled as a plain word may mean its parts ("vertebrae").
            assert "_" not in structure.name, structure.name
            assert result.structures == structure.parts, structure.name


def test_every_display_resolves_to_its_structure() -> None:
    for structure in all_structures():
        assert resolve(structure.display).structures == (structure.name,), structure.display


def test_every_group_display_and_synonym_resolves_to_its_members() -> None:
    for group in all_groups():
        assert resolve(group.display).structures == group.members, group.id
        for synonym in group.synonyms:
            assert resolve(synonym).structures == group.members, (group.id, synonym)


def test_structure_table_is_consistent() -> None:
    structures = all_structures()
    assert len(structures) == len(NAMES)
    for s in structures:
        assert s.category in {"organ", "vessel", "bone", "muscle", "airway", "other"}, s.name
        assert s.laterality in {"left", "right", None}, s.name
        if s.laterality is None:
            assert s.base == s.name, s.name
        else:
            assert s.display.startswith(s.laterality.capitalize()), s.name
            assert s.name.split("_").count(s.laterality) == 1, s.name
        assert all(part in NAMES for part in s.parts), s.name


def test_vocabulary_covers_other_label_sources() -> None:
    # total_v1-only names, used by the shared SAM-Med2D demo masks.
    v1_heart = {"heart_myocardium", "heart_atrium_left", "heart_atrium_right",
                "heart_ventricle_left", "heart_ventricle_right", "pulmonary_artery", "face"}
    new_names = {"rectum", "uterus", "femoral_head_left", "femoral_head_right"}
    assert v1_heart | new_names <= NAMES
    assert len([n for n in NAMES if n.startswith("rib_")]) == 24
    assert len([n for n in NAMES if n.startswith("vertebrae_")]) == 25


def test_get_structure() -> None:
    kidney = get_structure("kidney_left")
    assert (kidney.display, kidney.base, kidney.laterality) == ("Left kidney", "kidney", "left")
    assert kidney.category == "organ"
    assert get_structure("rib_left_7").groups == ("ribs",)
    assert get_structure("vertebrae_L2").groups == ("spine", "lumbar_spine")
    assert get_structure("lung_left").parts == LEFT_LOBES
    with pytest.raises(VocabularyError) as error:
        get_structure("kidny_left")
    assert "kidney_left" in error.value.suggestions


def test_display_name_and_synonyms_of() -> None:
    assert display_name("kidney_left") == "Left kidney"
    assert display_name("iliac_vena") == "Common iliac vein"  # a side-free concept base
    assert display_name("vertebrae_L2") == "L2 vertebra"
    assert "renal" in synonyms_of("kidney_left")
    assert "LUL" not in synonyms_of("lung_upper_lobe_right") and "lul" in synonyms_of("lung_upper_lobe_left")
    with pytest.raises(VocabularyError):
        display_name("banana")


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_structure("liver").name = "spleen"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolve("liver").structures = ()  # type: ignore[misc]


# --------------------------------------------------------------------------- phrases

SYNONYMS = [
    # lay, radiological and Latin terms
    ("lien", ("spleen",)),
    ("splenic", ("spleen",)),
    ("hepar", ("liver",)),
    ("hepatic", ("liver",)),
    ("gall bladder", ("gallbladder",)),
    ("GB", ("gallbladder",)),
    ("cholecyst", ("gallbladder",)),
    ("IVC", ("inferior_vena_cava",)),
    ("inferior vena cava", ("inferior_vena_cava",)),
    ("postcava", ("inferior_vena_cava",)),
    ("vena cava inferior", ("inferior_vena_cava",)),
    ("SVC", ("superior_vena_cava",)),
    ("bladder", ("urinary_bladder",)),
    ("oesophagus", ("esophagus",)),
    ("gullet", ("esophagus",)),
    ("windpipe", ("trachea",)),
    ("small intestine", ("small_bowel",)),
    ("intestine", ("small_bowel",)),
    ("large bowel", ("colon",)),
    ("womb", ("uterus",)),
    ("collarbone", ("clavicula_left", "clavicula_right")),
    ("shoulder blades", ("scapula_left", "scapula_right")),
    ("breastbone", ("sternum",)),
    ("thyroid", ("thyroid_gland",)),
    ("portal vein", ("portal_vein_and_splenic_vein",)),
    ("head of the right femur", ("femoral_head_right",)),
    ("atlas", ("vertebrae_C1",)),
    # laterality forms and word order
    ("left kidney", ("kidney_left",)),
    ("kidney left", ("kidney_left",)),
    ("kidney, left", ("kidney_left",)),
    ("L kidney", ("kidney_left",)),
    ("lt kidney", ("kidney_left",)),
    ("Rt. kidney", ("kidney_right",)),
    ("left renal", ("kidney_left",)),
    ("left-sided kidney", ("kidney_left",)),
    ("sinister kidney", ("kidney_left",)),
    ("ren dexter", ("kidney_right",)),
    ("the kidney on the right side", ("kidney_right",)),
    ("right adrenal", ("adrenal_gland_right",)),
    ("upper left lobe", ("lung_upper_lobe_left",)),
    ("upper lobe of the left lung", ("lung_upper_lobe_left",)),
    ("LUL", ("lung_upper_lobe_left",)),
    ("middle lobe", ("lung_middle_lobe_right",)),
    ("left atrium", ("heart_atrium_left",)),
    ("RV", ("heart_ventricle_right",)),
    ("right common iliac vein", ("iliac_vena_right",)),
    ("left gluteus maximus muscle", ("gluteus_maximus_left",)),
    # polite wrappers
    ("segment the left kidney", ("kidney_left",)),
    ("show me the spleen", ("spleen",)),
    ("please outline liver", ("liver",)),
    ("Can you highlight the pancreas?", ("pancreas",)),
    ("where is the aorta in this image", ("aorta",)),
    # numbered families
    ("7th left rib", ("rib_left_7",)),
    ("left rib 7", ("rib_left_7",)),
    ("rib 7 left", ("rib_left_7",)),
    ("seventh rib on the right", ("rib_right_7",)),
    ("rib 7", ("rib_left_7", "rib_right_7")),
    ("L2", ("vertebrae_L2",)),
    ("L2 vertebra", ("vertebrae_L2",)),
    ("vertebra L2", ("vertebrae_L2",)),
    ("second lumbar vertebra", ("vertebrae_L2",)),
    ("T12", ("vertebrae_T12",)),
    ("Th12", ("vertebrae_T12",)),
    ("C7", ("vertebrae_C7",)),
    ("S1", ("vertebrae_S1",)),
    ("vertebrae_L2", ("vertebrae_L2",)),
    # groups and pairs
    ("kidney", KIDNEYS),
    ("kidneys", KIDNEYS),
    ("both kidneys", KIDNEYS),
    ("left and right kidney", KIDNEYS),
    ("bilateral kidneys", KIDNEYS),
    ("left lung", ("lung_left",)),  # the whole lung, as users say it; its lobes are named as lobes
    ("right lung", ("lung_right",)),
    ("lungs", ("lung_left", "lung_right")),
    ("lung lobes", ("lung_upper_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
                    "lung_lower_lobe_left", "lung_lower_lobe_right")),
    ("adrenal glands", ("adrenal_gland_left", "adrenal_gland_right")),
    ("lumbar spine", tuple(f"vertebrae_L{n}" for n in range(1, 6))),
    ("L-spine", tuple(f"vertebrae_L{n}" for n in range(1, 6))),
    ("cervical vertebrae", tuple(f"vertebrae_C{n}" for n in range(1, 8))),
    ("left gluteal muscles", ("gluteus_maximus_left", "gluteus_medius_left", "gluteus_minimus_left")),
    ("left heart chambers", ("heart_atrium_left", "heart_ventricle_left")),
    ("iliac vessels", ("iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right")),
    ("vena cava", ("superior_vena_cava", "inferior_vena_cava")),
    ("pelvis", ("sacrum", "hip_left", "hip_right")),
    # exact composite identifiers
    ("lung_left", ("lung_left",)),
    ("whole left lung", ("lung_left",)),
    ("adrenal_glands", ("adrenal_glands",)),
]


@pytest.mark.parametrize(("phrase", "expected"), SYNONYMS)
def test_phrase_resolves(phrase: str, expected: tuple[str, ...]) -> None:
    result = resolve(phrase)
    assert result.structures == expected
    assert result.kind == ("structure" if len(result.structures) == 1 else "group")
    assert result.phrase == phrase


def test_laterality_is_recorded_as_stated() -> None:
    assert resolve("left kidney").laterality == "left"
    assert resolve("kidney, right").laterality == "right"
    assert resolve("LA").laterality == "left"  # the abbreviation states the side
    assert resolve("kidney").laterality is None
    assert resolve("both kidneys").laterality is None
    assert resolve("liver").laterality is None


def test_result_fields() -> None:
    result = resolve("segment the left renal")
    assert result == Resolution("segment the left renal", ("kidney_left",), "left", "renal", "structure")
    ribs = resolve("ribs")
    assert (len(ribs.structures), ribs.kind) == (24, "group")
    left_ribs = resolve("left ribs")
    assert left_ribs.structures == tuple(f"rib_left_{n}" for n in range(1, 13))
    assert len(resolve("spine").structures) == 25


def test_every_paired_concept_accepts_all_side_forms() -> None:
    for s in all_structures():
        if s.laterality is None or s.name.startswith("rib_"):
            continue
        concept = s.display.split(" ", 1)[1]
        short = s.laterality[0]
        for phrase in (f"{s.laterality} {concept}", f"{concept} {s.laterality}", f"{concept}, {s.laterality}",
                       f"{short} {concept}", f"{s.laterality}-sided {concept}"):
            assert resolve(phrase).structures == (s.name,), phrase


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("phrase", ["left banana", "xyzzy", "banana", ""])
def test_unknown_phrase_is_refused_with_three_suggestions(phrase: str) -> None:
    with pytest.raises(VocabularyError) as error:
        resolve(phrase)
    message = str(error.value)
    assert "\n" not in message
    if phrase:
        assert message.startswith(f"Unknown structure '{phrase}'. Did you mean: ")
        assert len(error.value.suggestions) == 3
        assert "limis vocab" in message


def test_suggestions_are_close_and_resolvable() -> None:
    assert suggest("kidny")[0] == "Kidney"
    assert "Aorta" in suggest("abdominal aorta")
    assert "Iliopsoas" in suggest("psoas")
    for phrase in ["left banana", "xyzzy", "kidny", "liver and spleen", "rigth lung", "vertebre"]:
        for suggestion in suggest(phrase, n=5):
            resolve(suggestion)  # a suggestion the user cannot type back would be useless


def test_left_liver_is_refused_because_the_liver_is_unpaired() -> None:
    with pytest.raises(VocabularyError) as error:
        resolve("left liver")
    assert "unpaired" in str(error.value) and "'left' does not apply" in str(error.value)
    assert error.value.suggestions == ["Liver"]


@pytest.mark.parametrize(
    ("phrase", "fragment", "suggestion"),
    [
        ("left middle lobe", "only on the right side", "Right middle lung lobe"),
        ("right atrial appendage", "only on the left side", "Left atrial appendage"),
        ("both livers", "unpaired", "Liver"),
        ("left L2", "unpaired", "L2 vertebra"),
        ("left spine", "unpaired", "Spine (all vertebrae)"),
        ("rib 13", "no rib 13", "Left rib 12"),
        ("L6", "no lumbar vertebra 6", "L5 vertebra"),
        ("right LA", "contradicts", "Left heart atrium"),
    ],
)
def test_wrong_side_or_number_is_refused(phrase: str, fragment: str, suggestion: str) -> None:
    with pytest.raises(VocabularyError) as error:
        resolve(phrase)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)
    assert error.value.suggestions[0] == suggestion


@pytest.mark.parametrize("phrase", ["not the liver", "no liver", "except the spleen", "without the liver",
                                    "please exclude the liver", "liver and not the spleen"])
def test_negation_is_refused_not_ignored(phrase: str) -> None:
    with pytest.raises(PhraseRefusedError, match="cannot segment everything except a structure") as error:
        resolve_many(phrase)
    assert "\n" not in str(error.value)


def test_refinement_commands_that_start_like_a_negation_still_parse() -> None:
    from limis.interact import commands as cmd

    assert cmd.parse("exclude the upper part") == cmd.AddPoint(("top",), False)
    assert cmd.parse("no, the other one") == cmd.Select("other")
    with pytest.raises(cmd.NotUnderstood, match="cannot segment everything except"):
        cmd.parse("not the liver")


@pytest.mark.parametrize(("phrase", "extra", "structure"), [("liver tumor", "tumor", "the liver"),
                                                            ("tumor in the liver", "tumor", "the liver"),
                                                            ("abdominal aorta", "abdominal", "the aorta"),
                                                            ("left kidney stone", "stone", "the kidney")])
def test_an_unknown_modifier_is_refused_not_dropped(phrase: str, extra: str, structure: str) -> None:
    with pytest.raises(PhraseRefusedError) as error:
        resolve(phrase)
    assert f"'{extra}' is not a known part or modifier of {structure}; LIMIS segments whole structures" in str(
        error.value)


def test_both_sides_without_and_are_refused() -> None:
    with pytest.raises(PhraseRefusedError, match="say 'left kidney', 'right kidney' or 'both kidneys'"):
        resolve("left right kidney")
    assert resolve("left and right kidney").structures == KIDNEYS == resolve("both kidneys").structures


@pytest.mark.parametrize("phrase", ["левая почка", "左肾", "левая kidney"])
def test_non_english_words_are_not_understood(phrase: str) -> None:
    with pytest.raises(PhraseRefusedError) as error:
        resolve_many(phrase)
    assert "is not understood: LIMIS expects English anatomical terms" in str(error.value)
    assert "Empty" not in str(error.value)


def test_a_long_prompt_is_refused_without_echoing_it() -> None:
    prompt = "left kidney " * 900  # about 10 kB
    for entry in (resolve, resolve_many):
        with pytest.raises(PhraseRefusedError, match="10800 characters long; LIMIS takes at most 200") as error:
            entry(prompt)
        assert len(str(error.value)) < 200


def test_a_near_miss_spelling_names_the_one_structure_meant() -> None:
    with pytest.raises(PhraseRefusedError, match=r"Unknown structure 'spleeen'\. Did you mean: spleen\?") as error:
        resolve("spleeen")
    assert error.value.suggestions == ["spleen"]
    with pytest.raises(PhraseRefusedError, match="Did you mean: left kidney\\?"):
        resolve("left kidny")


# --------------------------------------------------------------------------- lists


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("liver and spleen", [("liver",), ("spleen",)]),
        ("liver, spleen", [("liver",), ("spleen",)]),
        ("kidneys + aorta", [KIDNEYS, ("aorta",)]),
        ("segment the liver and the spleen", [("liver",), ("spleen",)]),
        ("kidney, left and spleen", [("kidney_left",), ("spleen",)]),
        ("left and right kidney, aorta", [KIDNEYS, ("aorta",)]),
        ("portal vein and splenic vein", [("portal_vein_and_splenic_vein",)]),
        ("L2 and L3; T12", [("vertebrae_L2",), ("vertebrae_L3",), ("vertebrae_T12",)]),
        ("liver", [("liver",)]),
    ],
)
def test_resolve_many_splits_lists(text: str, expected: list[tuple[str, ...]]) -> None:
    assert [r.structures for r in resolve_many(text)] == expected


def test_resolve_many_refuses_the_first_unknown_part() -> None:
    with pytest.raises(VocabularyError) as error:
        resolve_many("liver, banana and spleen")
    assert "'banana'" in str(error.value)
    with pytest.raises(VocabularyError):
        resolve_many(" , and ")


# --------------------------------------------------------------------------- label sets


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("totalsegmentator_total", 117),
        ("totalsegmentator_total_v1", 104),
        ("totalsegmentator_total_mr", 50),
        ("amos", 15),
        ("btcv", 13),
        ("word", 16),
    ],
)
def test_label_sets_have_expected_sizes_and_canonical_values(name: str, size: int) -> None:
    table = label_set(name)
    assert sorted(table) == list(range(1, size + 1))
    assert set(table.values()) <= NAMES
    assert len(set(table.values())) == size


def test_label_set_entries() -> None:
    assert label_set("totalsegmentator_total")[3] == "kidney_left"
    assert label_set("totalsegmentator_total")[117] == "costal_cartilages"
    assert label_set("amos")[9] == "inferior_vena_cava"
    assert label_set("amos")[15] == "prostate"
    assert label_set("btcv")[10] == "portal_vein_and_splenic_vein"
    assert label_set("word")[11] == "small_bowel"
    assert label_set("word")[12] == "adrenal_glands"
    assert (label_set("word")[15], label_set("word")[16]) == ("femoral_head_left", "femoral_head_right")
    assert label_set("totalsegmentator_total_mr")[10] == "lung_left"
    assert set(label_set_names()) == {"totalsegmentator_total", "totalsegmentator_total_v1",
                                      "totalsegmentator_total_mr", "amos", "btcv", "word"}


def test_canonical_label_names_resolve_a_datasets_own_names() -> None:
    names = {1: "postcava", 2: "kidney_left", 3: "Right kidney", 4: "not_a_structure", 5: "kidneys"}
    assert canonical_label_names(names) == {1: "inferior_vena_cava", 2: "kidney_left", 3: "kidney_right",
                                            4: "not_a_structure", 5: "kidneys"}  # unknown or several: kept


def test_label_set_is_a_copy_and_unknown_names_are_refused() -> None:
    table = label_set("amos")
    table[1] = "liver"
    assert label_set("amos")[1] == "spleen"
    with pytest.raises(VocabularyError) as error:
        label_set("totalsegmentator")
    assert "totalsegmentator_total" in error.value.suggestions


# --------------------------------------------------------------------------- packaging


def test_import_loads_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, limis.vocab as v; v.resolve('left kidney'); v.label_set('amos'); "
        "heavy = [m for m in ('torch', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True,
                   env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""})


def test_data_files_live_inside_the_package() -> None:
    data = REPO_ROOT / "limis" / "vocab" / "data"
    assert (data / "structures.json").is_file() and (data / "label_sets.json").is_file()
