"""Audit datasets: a manifest CSV, or a folder per person with a labels CSV per person;
automatic choice of the demographic attributes; the "unknown" group; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceaccord.cli.app import app
from faceaccord.errors import InputError
from faceaccord.fairness.datasets import MAX_LEVELS, UNKNOWN, load_dataset


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really a photo")
    return path


# Manifest CSV


def test_a_manifest_resolves_paths_relative_to_the_csv(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "data" / "manifest.csv",
        "path,subject_id,sex,ethnicity\n"
        "img/p1_a.jpg,p1,female,black\n"
        "img/p1_b.jpg,p1,female,black\n"
        "img/p2_a.jpg,p2,male,white\n"
        "../elsewhere/p3.jpg,p3,male,east_asian\n",
    )
    dataset = load_dataset(manifest)
    assert dataset.name == "manifest"
    assert dataset.root == manifest.parent
    assert [i.path for i in dataset.images] == [
        (tmp_path / "data" / "img" / "p1_a.jpg").resolve(),
        (tmp_path / "data" / "img" / "p1_b.jpg").resolve(),
        (tmp_path / "data" / "img" / "p2_a.jpg").resolve(),
        (tmp_path / "elsewhere" / "p3.jpg").resolve(),
    ]
    assert all(i.path.is_absolute() for i in dataset.images)
    assert [i.subject for i in dataset.images] == ["p1", "p1", "p2", "p3"]
    assert dataset.subjects == ["p1", "p2", "p3"]
    assert dataset.attributes == ("sex", "ethnicity")
    assert dict(dataset.images[0].attributes) == {"sex": "female", "ethnicity": "black"}
    assert dict(dataset.images[3].attributes) == {"sex": "male", "ethnicity": "east_asian"}
    assert dataset.label_method == "not stated"


def test_absolute_paths_in_a_manifest_stay_as_they_are(tmp_path: Path) -> None:
    photo = touch(tmp_path / "photos" / "x.jpg")
    manifest = write(tmp_path / "m" / "list.csv", f"path,subject,sex\n{photo},x,f\n{photo},y,m\n")
    assert load_dataset(manifest).images[0].path == photo.resolve()


@pytest.mark.parametrize("column", ["subject_id", "subject", "identity", "id"])
def test_each_subject_column_name_is_understood(tmp_path: Path, column: str) -> None:
    manifest = write(tmp_path / "m.csv", f"path,{column},sex\na.jpg,s1,female\nb.jpg,s2,male\n")
    dataset = load_dataset(manifest)
    assert dataset.subjects == ["s1", "s2"]
    assert dataset.attributes == ("sex",)


def test_subject_id_wins_over_other_subject_columns(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,identity,subject_id,sex\na.jpg,i1,s1,female\nb.jpg,i2,s2,male\n",
    )
    assert load_dataset(manifest).subjects == ["s1", "s2"]


def test_the_label_method_column_states_how_labels_were_obtained(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,subject_id,sex,label_method\n"
        "a.jpg,s1,female,self-reported\n"
        "b.jpg,s2,male,self-reported\n",
    )
    dataset = load_dataset(manifest)
    assert dataset.label_method == "self-reported"
    assert dataset.attributes == ("sex",)  # label_method is not a demographic attribute
    mixed = write(
        tmp_path / "mixed.csv",
        "path,subject_id,sex,label_method\n"
        "a.jpg,s1,female,self-reported\n"
        "b.jpg,s2,male,perceived\n"
        "c.jpg,s3,male,\n",
    )
    assert load_dataset(mixed).label_method == "perceived, self-reported"
    # stated on the command line, it wins
    assert load_dataset(mixed, label_method="phenotypic").label_method == "phenotypic"


def test_self_reported_columns_imply_the_label_method(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,subject_id,gender_self_reported\na.jpg,s1,female\nb.jpg,s2,male\n",
    )
    assert load_dataset(manifest).label_method == "self-reported"


def test_a_row_without_a_path_names_its_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,subject_id,sex\na.jpg,s1,female\n,s2,male\nc.jpg,s3,male\n",
    )
    # line 1 is the header: the row with no path is line 3
    with pytest.raises(InputError, match=r"m\.csv:3: every row needs a path and a subject_id"):
        load_dataset(manifest)


def test_a_row_without_a_subject_names_its_line(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv", "path,subject,sex\na.jpg,s1,female\nb.jpg,s2,male\nc.jpg, ,male\n"
    )
    with pytest.raises(InputError, match=r"m\.csv:4: every row needs a path and a subject"):
        load_dataset(manifest)


def test_a_manifest_without_a_path_column_is_refused(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", "file_name,subject_id\na.jpg,s1\n")
    with pytest.raises(InputError, match="needs a 'path' column"):
        load_dataset(manifest)


def test_a_manifest_without_a_subject_column_is_refused(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", "path,person,sex\na.jpg,s1,female\n")
    with pytest.raises(InputError, match="no subject column"):
        load_dataset(manifest)


def test_an_empty_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows"):
        load_dataset(write(tmp_path / "m.csv", "path,subject_id,sex\n"))


def test_no_dataset_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no dataset at"):
        load_dataset(tmp_path / "missing")


# Automatic choice of attributes


def test_categorical_columns_are_kept_and_the_rest_dropped(tmp_path: Path) -> None:
    header = "path,subject_id,sex,age,age_band,site,file,expression,width,height,format,bytes"
    rows = []
    for k in range(30):
        sex = "female" if k % 2 else "male"
        band = ["18-24", "25-34", "35-44"][k % 3]
        # age: 30 different numbers (more than MAX_LEVELS levels): dropped, banded instead;
        # site: one level only, so nothing to compare: dropped;
        # file, expression, width, height, format, bytes: never demographic attributes
        rows.append(
            f"p{k}.jpg,s{k},{sex},{18 + k},{band},lab,p{k}.jpg,smiling,100,{100 + k},jpeg,{k}"
        )
    manifest = write(tmp_path / "m.csv", header + "\n" + "\n".join(rows) + "\n")
    assert MAX_LEVELS == 20
    assert load_dataset(manifest).attributes == ("sex", "age_band")


def test_a_column_with_as_many_levels_as_allowed_is_kept(tmp_path: Path) -> None:
    rows = "\n".join(f"p{k}.jpg,s{k},{k % MAX_LEVELS},{k % (MAX_LEVELS + 1)}" for k in range(42))
    manifest = write(tmp_path / "m.csv", f"path,subject_id,twenty,twenty_one\n{rows}\n")
    assert load_dataset(manifest).attributes == ("twenty",)


def test_chosen_attributes_override_the_automatic_choice(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,subject_id,sex,site\na.jpg,s1,female,lab\nb.jpg,s2,male,lab\n",
    )
    assert load_dataset(manifest, attributes=["site"]).attributes == ("site",)
    with pytest.raises(InputError, match=r"no column ethnicity in the labels \(columns: "):
        load_dataset(manifest, attributes=["sex", "ethnicity"])


def test_an_empty_label_in_a_manifest_is_the_unknown_group(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "path,subject_id,sex\na.jpg,s1,female\nb.jpg,s2,\nc.jpg,s3,male\n",
    )
    dataset = load_dataset(manifest)
    assert [i.attributes["sex"] for i in dataset.images] == ["female", UNKNOWN, "male"]


# Folder per person with labels per person


@pytest.fixture
def people(tmp_path: Path) -> Path:
    root = tmp_path / "people"
    for person, count in (("001", 2), ("002", 2), ("003", 1), ("004", 3)):
        for k in range(count):
            touch(root / person / f"{person}_{k}.jpg")
    touch(root / "001" / ".DS_Store")  # hidden files are not images of the person
    (root / "002" / "nested").mkdir()  # nor are sub-folders
    (root / ".cache").mkdir()  # hidden folders are not people
    touch(root / "README.txt")  # files beside the people are not people either
    return root


def test_a_folder_per_person_with_labels_keyed_by_identity(people: Path, tmp_path: Path) -> None:
    labels = write(
        tmp_path / "identities.csv",
        "identity,age_self_reported,gender_self_reported,ethnicity_self_reported\n"
        "001,24,female,white\n"
        "002,31,male,black\n"
        "003,,female,\n",  # 004 has no row at all
    )
    dataset = load_dataset(people, labels=labels)
    assert dataset.name == "people"
    assert dataset.subjects == ["001", "002", "003", "004"]
    assert len(dataset.images) == 2 + 2 + 1 + 3
    assert all(i.path.parent.name == i.subject for i in dataset.images)
    assert dataset.attributes == (
        "age_self_reported", "gender_self_reported", "ethnicity_self_reported",
    )  # fmt: skip
    assert dataset.label_method == "self-reported"
    by_subject = {i.subject: dict(i.attributes) for i in dataset.images}
    assert by_subject["001"] == {
        "age_self_reported": "24", "gender_self_reported": "female",
        "ethnicity_self_reported": "white",
    }  # fmt: skip
    # an empty label and a person with no labels at all both land in "unknown"
    assert by_subject["003"]["ethnicity_self_reported"] == UNKNOWN
    assert by_subject["003"]["age_self_reported"] == UNKNOWN
    assert set(by_subject["004"].values()) == {UNKNOWN}


def test_the_labels_key_may_be_any_subject_column(people: Path, tmp_path: Path) -> None:
    labels = write(tmp_path / "labels.csv", "subject_id,sex\n001,f\n002,m\n003,f\n004,m\n")
    dataset = load_dataset(people, labels=labels)
    assert dataset.attributes == ("sex",)
    assert {i.subject: i.attributes["sex"] for i in dataset.images} == {
        "001": "f", "002": "m", "003": "f", "004": "m",
    }  # fmt: skip


def test_a_folder_without_labels_has_no_attributes(people: Path) -> None:
    dataset = load_dataset(people)
    assert dataset.attributes == ()
    assert dataset.subjects == ["001", "002", "003", "004"]


def test_labels_without_a_subject_column_are_refused(people: Path, tmp_path: Path) -> None:
    labels = write(tmp_path / "labels.csv", "person,sex\n001,f\n002,m\n")
    with pytest.raises(InputError, match=r"labels\.csv: no subject column \(one of subject_id"):
        load_dataset(people, labels=labels)


def test_unknown_attributes_for_a_folder_are_refused(people: Path, tmp_path: Path) -> None:
    labels = write(tmp_path / "labels.csv", "identity,sex\n001,f\n002,m\n")
    with pytest.raises(InputError, match="no column skin_tone"):
        load_dataset(people, labels=labels, attributes=["skin_tone"])


def test_a_folder_without_people_is_refused(tmp_path: Path) -> None:
    touch(tmp_path / "flat" / "a.jpg")
    with pytest.raises(InputError, match="no sub-folder per person"):
        load_dataset(tmp_path / "flat")


def test_provenance_is_read_from_the_manifest_file(people: Path, tmp_path: Path) -> None:
    write(people / "MANIFEST.txt", "Licence: CC BY 4.0. Consent: signed.\n")
    labels = write(tmp_path / "labels.csv", "identity,sex\n001,f\n002,m\n")
    assert load_dataset(people, labels=labels).provenance == "Licence: CC BY 4.0. Consent: signed."
    other = tmp_path / "other"
    touch(other / "p" / "a.jpg")
    assert "no MANIFEST.txt or README found" in load_dataset(other).provenance


# The same errors through ``faceaccord fairness audit`` (refused before any model is loaded)


def audit_cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["fairness", "audit", *map(str, args)])
    return result.exit_code, " ".join(result.stderr.split())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_cli_refuses_a_dataset_with_no_attribute(
    people: Path, tmp_path: Path, home: Path
) -> None:
    code, err = audit_cli("--dataset", people, "--out", tmp_path / "out")
    assert code == 3
    assert "no demographic attribute to audit: give --labels or --attributes" in err
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_unknown_attributes_and_labels_without_subjects(
    people: Path, tmp_path: Path, home: Path
) -> None:
    labels = write(tmp_path / "labels.csv", "identity,sex\n001,f\n002,m\n")
    code, err = audit_cli(
        "--dataset", people, "--labels", labels, "--attributes", "sex, skin_tone",
        "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 3
    assert "no column skin_tone" in err
    nameless = write(tmp_path / "nameless.csv", "person,sex\n001,f\n002,m\n")
    code, err = audit_cli("--dataset", people, "--labels", nameless, "--out", tmp_path / "out")
    assert code == 3
    assert "no subject column" in err


def test_the_cli_names_the_line_of_a_manifest_row_without_a_path(
    tmp_path: Path, home: Path
) -> None:
    manifest = write(tmp_path / "m.csv", "path,subject_id,sex\na.jpg,s1,f\n,s2,m\n")
    code, err = audit_cli("--dataset", manifest, "--out", tmp_path / "out")
    assert code == 3
    assert "m.csv:3: every row needs a path and a subject_id" in err
