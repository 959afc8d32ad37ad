"""The audit's HTML page: self-contained (plots embedded as PNG), built from ``report.json``
alone, so a report can be re-rendered, and checked, from its data."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from matplotlib.figure import Figure

__all__ = ["render_html"]

EPSILON = 1e-5


def render_html(report: dict[str, Any]) -> str:
    plots = {
        attribute: {
            "rates": _rates_plot(data),
            "det": _det_plot(data),
            "heatmap": _heatmap(data),
            "scores": _scores_plot(data, report["threshold"]["value"]),
        }
        for attribute, data in report["attributes"].items()
    }
    environment = Environment(
        loader=PackageLoader("faceaccord.fairness", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["rate"] = _format_rate
    environment.filters["number"] = _format_number
    return environment.get_template("audit.html.j2").render(r=report, plots=plots)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _rates_plot(data: dict[str, Any]) -> str:
    groups = list(data["groups"])
    figure = Figure(figsize=(9, 3.2))
    for position, rate in enumerate(("fmr", "fnmr"), start=1):
        axis = figure.add_subplot(1, 2, position)
        values = [_number(data["groups"][g][rate]["value"]) for g in groups]
        low = [_number(data["groups"][g][rate]["ci95"][0]) for g in groups]
        high = [_number(data["groups"][g][rate]["ci95"][1]) for g in groups]
        finite = [
            not (math.isnan(v) or math.isnan(a) or math.isnan(b))
            for v, a, b in zip(values, low, high, strict=True)
        ]
        errors = np.array(
            [
                [max(v - a, 0) if ok else 0 for v, a, ok in zip(values, low, finite, strict=True)],
                [max(b - v, 0) if ok else 0 for v, b, ok in zip(values, high, finite, strict=True)],
            ]
        )
        axis.bar(
            groups, values, yerr=errors, capsize=4, color="#4a78a8" if rate == "fmr" else "#c0504d"
        )
        axis.set_title(("False-match" if rate == "fmr" else "False non-match") + " rate, 95 % CI")
        axis.tick_params(axis="x", rotation=30)
        axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def _det_plot(data: dict[str, Any]) -> str:
    figure = Figure(figsize=(5, 4))
    axis = figure.add_subplot(1, 1, 1)
    for group, cell in data["groups"].items():
        points = cell["det"]
        if not points:
            continue
        fmr = [max(p["fmr"], EPSILON) for p in points]
        fnmr = [max(p["fnmr"], EPSILON) for p in points]
        axis.plot(fmr, fnmr, label=f"{group} ({cell['subjects']} subjects)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("false-match rate")
    axis.set_ylabel("false non-match rate")
    axis.set_title("DET per group (same-group impostors)")
    axis.grid(alpha=0.3, which="both")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    else:
        axis.text(0.5, 0.5, "no group has both genuine and impostor pairs",
                  ha="center", va="center", transform=axis.transAxes)  # fmt: skip
    return _png(figure)


def _heatmap(data: dict[str, Any]) -> str:
    cross = data["cross_group_fmr"]
    groups = cross["groups"]
    values = np.array([[np.nan if v is None else v for v in row] for row in cross["fmr"]])
    figure = Figure(figsize=(4.5, 3.8))
    axis = figure.add_subplot(1, 1, 1)
    image = axis.imshow(values, cmap="Reds")
    axis.set_xticks(range(len(groups)), groups, rotation=40, ha="right")
    axis.set_yticks(range(len(groups)), groups)
    for i in range(len(groups)):
        for j in range(len(groups)):
            if not np.isnan(values[i, j]):
                axis.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", fontsize=7)
    axis.set_title("FMR by the two people's groups")
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _png(figure)


def _scores_plot(data: dict[str, Any], threshold: float) -> str:
    figure = Figure(figsize=(7, 3))
    axis = figure.add_subplot(1, 1, 1)
    groups = list(data["groups"])
    for offset, kind, colour in ((-0.15, "genuine", "#2e7d32"), (0.15, "impostor", "#6d4c41")):
        for position, group in enumerate(groups):
            q = data["groups"][group]["scores"][kind]
            if q is None:
                continue
            axis.plot([position + offset] * 2, [q["p5"], q["p95"]], color=colour, linewidth=2)
            label = kind if position == 0 else None
            axis.plot(position + offset, q["median"], "o", color=colour, label=label)
    axis.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    axis.set_xticks(range(len(groups)), groups, rotation=30)
    axis.set_ylabel("distance (5th, 50th, 95th percentile)")
    axis.set_title("Score distributions: a match is below the threshold")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def _number(value: float | None) -> float:
    """Undefined figures are null in report.json."""
    return math.nan if value is None else float(value)


def _format_rate(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * 100:.3g} %"


def _format_number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"
