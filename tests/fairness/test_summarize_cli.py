"""``faceaccord fairness summarize --rates CSV``: summary measures from rates someone else
published, computed exactly, and bad tables refused with exit code 3 and a clear message."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faceaccord.cli.app import app

runner = CliRunner()
KEYS = {"fmr_ratio", "fnmr_ratio", "fdr", "inequity_rate", "garbe", "alpha"}


def rates_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text(text, encoding="utf-8")
    return path


def summarize(path: Path, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["fairness", "summarize", "--rates", str(path), *extra])
    return result.exit_code, result.stdout, result.stderr


THREE_GROUPS = "group,fmr,fnmr\na,0.001,0.05\nb,0.004,0.02\nc,0.002,0.1\n"


def test_three_groups_by_hand(tmp_path: Path) -> None:
    code, out, err = summarize(rates_csv(tmp_path, THREE_GROUPS), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == KEYS
    # FMR [0.001, 0.004, 0.002]: ratio 0.004 / 0.001 = 4, gap 0.003
    # FNMR [0.05, 0.02, 0.1]:   ratio 0.1 / 0.02 = 5,    gap 0.08
    assert document["fmr_ratio"] == pytest.approx(4.0, rel=1e-12)
    assert document["fnmr_ratio"] == pytest.approx(5.0, rel=1e-12)
    # FDR = 1 - (0.5 * 0.003 + 0.5 * 0.08) = 1 - 0.0415 = 0.9585
    assert document["fdr"] == pytest.approx(0.9585, abs=1e-12)
    # inequity = 4^0.5 * 5^0.5 = sqrt(20)
    assert document["inequity_rate"] == pytest.approx(math.sqrt(20), rel=1e-12)
    # Gini(FMR): sum |xi - xj| = 2 (0.003 + 0.001 + 0.002) = 0.012, mean 0.007 / 3
    #   = 1.5 * 0.012 / (2 * 9 * 0.007 / 3) = 0.018 / 0.042 = 3/7
    # Gini(FNMR): sum = 2 (0.03 + 0.05 + 0.08) = 0.32, mean 0.17 / 3
    #   = 1.5 * 0.32 / (2 * 9 * 0.17 / 3) = 0.48 / 1.02 = 8/17
    # GARBE = 0.5 * 3/7 + 0.5 * 8/17 = 107/238
    assert document["garbe"] == pytest.approx(107 / 238, abs=1e-12)
    assert document["alpha"] == 0.5


def test_another_alpha(tmp_path: Path) -> None:
    code, out, err = summarize(rates_csv(tmp_path, THREE_GROUPS), "--alpha", "0.25", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == KEYS
    assert document["alpha"] == 0.25
    # FDR = 1 - (0.25 * 0.003 + 0.75 * 0.08) = 1 - (0.00075 + 0.06) = 0.93925
    assert document["fdr"] == pytest.approx(0.93925, abs=1e-12)
    assert document["inequity_rate"] == pytest.approx(4**0.25 * 5**0.75, rel=1e-12)
    assert document["garbe"] == pytest.approx(0.25 * 3 / 7 + 0.75 * 8 / 17, abs=1e-12)
    assert document["fmr_ratio"] == pytest.approx(4.0, rel=1e-12)


def test_an_undefined_ratio_is_null(tmp_path: Path) -> None:
    path = rates_csv(tmp_path, "group,fmr,fnmr\na,0,0.05\nb,0.004,0.02\nc,0.002,0.1\n")
    code, out, err = summarize(path, "--json")
    assert code == 0, err
    assert "Infinity" not in out
    document = json.loads(out)
    assert set(document) == KEYS
    assert document["fmr_ratio"] is None
    assert document["inequity_rate"] is None
    assert document["fnmr_ratio"] == pytest.approx(5.0, rel=1e-12)
    # FDR and GARBE stay defined: 1 - (0.5 * 0.004 + 0.5 * 0.08) = 0.958
    assert document["fdr"] == pytest.approx(0.958, abs=1e-12)
    assert document["garbe"] is not None


def test_the_text_output_says_undefined_and_why(tmp_path: Path) -> None:
    path = rates_csv(tmp_path, "group,fmr,fnmr\nwomen,0,0.05\nmen,0.004,0.02\n")
    code, out, err = summarize(path)
    assert code == 0, err
    assert "2 groups: women, men" in out
    assert "fmr_ratio: undefined" in out
    assert "note: the lowest FMR is 0" in out


def test_extra_columns_and_a_byte_order_mark_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("group,fmr,fnmr,source\na,0.1,0.2,nist\nb,0.2,0.2,nist\n", encoding="utf-8-sig")
    code, out, err = summarize(path, "--json")
    assert code == 0, err
    assert json.loads(out)["fmr_ratio"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("group,fmr\na,0.1\nb,0.2\n", "needs the columns group,fmr,fnmr"),
        ("team,fmr,fnmr\na,0.1,0.2\nb,0.2,0.1\n", "needs the columns group,fmr,fnmr"),
        ("group,fmr,fnmr\n", "needs the columns group,fmr,fnmr"),
        ("group,fmr,fnmr\na,0.1,0.2\nb,high,0.1\n", "rates.csv:3: fmr and fnmr must be numbers"),
        ("group,fmr,fnmr\na,0.1,\nb,0.2,0.1\n", "rates.csv:2: fmr and fnmr must be numbers"),
        ("group,fmr,fnmr\na,0.1,0.2\nb,1.5,0.1\n", "rates.csv:3: rates are fractions between 0"),
        ("group,fmr,fnmr\na,0.1,-0.2\nb,0.2,0.1\n", "rates.csv:2: rates are fractions between 0"),
        ("group,fmr,fnmr\na,0.1,0.2\nb,nan,0.1\n", "rates.csv:3: rates are fractions between 0"),
        ("group,fmr,fnmr\na,0.1,0.2\n", "summary measures need at least two groups"),
    ],
)
def test_a_bad_table_exits_3_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = rates_csv(tmp_path, text)
    code, out, err = summarize(path)
    assert code == 3
    assert out == ""
    assert message in " ".join(err.split())
    code, out, err = summarize(path, "--json")
    assert code == 3
    error = json.loads(err)["error"]
    assert error["code"] == "invalid_input"
    assert message in error["message"]
