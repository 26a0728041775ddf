"""SpaceNet's standard APLS keeps the reference's rules where nltool's variant differs (small hand-built cases)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("shapely", reason="the [vector] extra (shapely, networkx, scipy, pyproj) is not installed")
pytest.importorskip("scipy", reason="the [vector] extra (scipy) is not installed")

from nltool.vectors.apls import AplsSettings, metric_graph, nltool_apls, standard_apls
from nltool.vectors.apls_spacenet import spacenet_graph


def _lonlat(*lines: list[tuple[float, float]]) -> list[np.ndarray]:
    """Lines given in metres of UTM 11N (around Las Vegas), as WGS 84 lon/lat."""
    import pyproj

    transformer = pyproj.Transformer.from_crs(32611, 4326, always_xy=True)
    origin = np.array([661000.0, 4003000.0])
    return [np.column_stack(transformer.transform(*(np.array(line, float) + origin).T)) for line in lines]


STRAIGHT = [(0.0, 0.0), (200.0, 0.0), (400.0, 0.0)]
ARC = [(400 * t, 120 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 21)]


def test_identical_networks_score_one() -> None:
    lines = _lonlat(STRAIGHT, ARC, [(200.0, 0.0), (200.0, -150.0)])
    result = standard_apls(lines, lines)
    assert (result.apls, result.truth_to_proposal, result.proposal_to_truth) == pytest.approx((1.0, 1.0, 1.0))
    assert result.variant == "spacenet" and result.to_dict()["standard"] is True


def test_only_curved_edges_get_control_points_along_them() -> None:
    """A straight 400 m road gets no control point along it (is_curved_eps), a 400 m arc gets one per
    ~200 m; nltool's variant puts them on straight roads too."""
    straight, arc = standard_apls(_lonlat(STRAIGHT), _lonlat(STRAIGHT)), standard_apls(_lonlat(ARC), _lonlat(ARC))
    assert straight.truth_control_points == 2
    assert arc.truth_control_points > 2
    metres = metric_graph([np.array(STRAIGHT)])
    assert nltool_apls(metres, metres, AplsSettings(variant="nltool")).truth_control_points == 3


def test_lines_meet_only_at_shared_vertices() -> None:
    """Two roads crossing without a common vertex are a bridge in the reference's graph; nltool's
    variant nodes them into a junction."""
    crossing = ([(0.0, 50.0), (100.0, 50.0)], [(50.0, 0.0), (50.0, 100.0)])
    assert sorted(d for _, d in spacenet_graph(_lonlat(*crossing), 0).degree()) == [1, 1, 1, 1]
    assert sorted(d for _, d in metric_graph([np.array(line) for line in crossing]).degree()) == [1, 1, 1, 1, 4]


def test_a_road_missing_from_the_proposal_costs_its_paths() -> None:
    """Truth: a T of three 150 m arms; proposal: two of them. Truth control points on the missing arm do
    not snap, so their paths count 1."""
    truth = _lonlat([(0.0, 0.0), (150.0, 0.0), (300.0, 0.0)], [(150.0, 0.0), (150.0, 150.0)])
    proposal = _lonlat([(0.0, 0.0), (150.0, 0.0), (300.0, 0.0)])
    result = standard_apls(truth, proposal)
    assert result.truth_to_proposal < 0.6 < result.proposal_to_truth
    assert result.apls == pytest.approx(2 / (1 / result.truth_to_proposal + 1 / result.proposal_to_truth))
