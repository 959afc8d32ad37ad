"""The README's first two commands and its library example stay true."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
CI_RUN = README.with_name(".ci") / "run"


def _python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no python example"
    return blocks


def _expected_lines(code: str) -> list[str]:
    """The comment on a print line, or on the comment-only line right after it."""
    lines = code.splitlines()
    expected = []
    for index, line in enumerate(lines):
        if "print(" not in line:
            continue
        inline = line.split("# ", 1)[1] if "  # " in line else None
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        expected.append(inline or following.removeprefix("# "))
    return expected


def test_the_readme_starts_with_the_demo_and_test_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert "make test" in lines


@pytest.mark.real_model
@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_each_python_example_runs_and_prints_what_it_says(index: int) -> None:
    code = _python_blocks()[index]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    assert output.getvalue().splitlines() == _expected_lines(code)
