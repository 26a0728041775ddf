"""``nltool apls`` equals SpaceNet's reference APLS (CosmiQ's apls.py) on city-shaped network pairs.

The pairs in tests/data/apls were written by ``python -m benchmarks.apls_fixtures --out tests/data/apls``;
the reference's numbers in reference.json by ``python -m benchmarks.apls_reference --write`` running
CosmiQ's own code (see that script and docs/vectors.md). Every pair, the total and both directions must
agree within 0.005, as the issue asks; they agree to about 1e-12.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("shapely", reason="the [vector] extra (shapely, networkx, scipy, pyproj) is not installed")
pytest.importorskip("scipy", reason="the [vector] extra (scipy) is not installed")

DATA = Path(__file__).resolve().parent.parent / "data" / "apls"
RECORDED = json.loads((DATA / "reference.json").read_text())["pairs"]
TOLERANCE = 0.005


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_cli_matches_the_reference(name: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nltool.app.cli import app

    out = tmp_path / "apls.json"
    result = CliRunner().invoke(app, ["apls", "--truth", str(DATA / f"{name}_truth.geojson"),
                                      "--proposal", str(DATA / f"{name}_proposal.geojson"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "SpaceNet APLS (standard" in result.output
    mine, reference = json.loads(out.read_text()), RECORDED[name]
    assert mine["standard"] is True and mine["variant"] == "spacenet"
    assert mine["apls"] == pytest.approx(reference["apls"], abs=TOLERANCE)
    assert mine["truth_to_proposal"] == pytest.approx(reference["apls_gt_onto_prop"], abs=TOLERANCE)
    assert mine["proposal_to_truth"] == pytest.approx(reference["apls_prop_onto_gt"], abs=TOLERANCE)
    assert mine["truth_control_points"] == reference["truth_control_points"]
    assert mine["proposal_control_points"] == reference["proposal_control_points"]


def test_the_fixtures_span_easy_and_hard_pairs() -> None:
    """The set is not all-perfect or all-broken: the reference's totals range from near 1 to about 0.5."""
    totals = [pair["apls"] for pair in RECORDED.values()]
    assert max(totals) > 0.95 and min(totals) < 0.7
    assert max(pair["truth_nodes"] for pair in RECORDED.values()) >= 100


def test_nltool_variant_says_it_is_not_the_standard(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nltool.app.cli import app

    out = tmp_path / "apls.json"
    result = CliRunner().invoke(app, ["apls", "--truth", str(DATA / "near_perfect_truth.geojson"), "--proposal",
                                      str(DATA / "near_perfect_proposal.geojson"), "--variant", "nltool",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "NOT SpaceNet's standard metric" in result.output
    report = json.loads(out.read_text())
    assert report["standard"] is False and "NOT SpaceNet's standard" in report["metric"]
