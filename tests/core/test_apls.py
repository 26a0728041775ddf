"""nltool's APLS variant (not the standard metric) on hand-built graphs whose value is known exactly,
with the parameters nltool used before the standard became the default (50 m, 10 m)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("shapely", reason="the [vector] extra (shapely, networkx) is not installed")

from nltool.errors import VectorError
from nltool.vectors.apls import AplsResult, metric_graph, nltool_apls
from nltool.vectors.settings import AplsSettings

NLTOOL = AplsSettings(variant="nltool", linestring_delta_m=50, min_path_length_m=10)


def _graph(*lines: list[tuple[float, float]]):
    return metric_graph([np.array(line, np.float64) for line in lines])


def apls(truth, proposal, settings: AplsSettings = NLTOOL) -> AplsResult:
    return nltool_apls(truth, proposal, settings)


STRAIGHT = [(0.0, 0.0), (100.0, 0.0)]
H = math.sqrt(30**2 - 25**2)  # a detour over x = 25..75 made of two 30 m legs: 60 m instead of 50 m
DETOUR_MIDDLE = [(0.0, 0.0), (25.0, 0.0), (50.0, H), (75.0, 0.0), (100.0, 0.0)]


def test_identical_graphs_score_one() -> None:
    grid = [[(0, 0), (200, 0)], [(0, 0), (0, 150)], [(100, -50), (100, 120)], [(0, 150), (200, 150)]]
    result = apls(_graph(*grid), _graph(*grid))
    assert result.apls == pytest.approx(1.0, abs=1e-9)
    assert result.truth_paths > 100 and result.proposal_paths == result.truth_paths


def test_disjoint_graphs_score_zero() -> None:
    result = apls(_graph(STRAIGHT), _graph([(0, 500), (100, 500)]))
    assert (result.apls, result.truth_to_proposal, result.proposal_to_truth) == (0.0, 0.0, 0.0)


def test_empty_proposal_scores_zero() -> None:
    result = apls(_graph(STRAIGHT), _graph())
    assert result.apls == 0.0 and result.truth_control_points == 2


def test_whole_road_twenty_percent_longer() -> None:
    """Truth: 100 m straight. Proposal: the same two ends joined by a 120 m bent road (no midpoints:
    linestring_delta 1000 m). Truth→proposal: |100 - 120| / 100 = 0.2 -> 0.8; proposal→truth:
    |120 - 100| / 120 = 1/6 -> 5/6; APLS = 2 · 0.8 · 5/6 / (0.8 + 5/6) = 0.8163265..."""
    bend = math.sqrt(60**2 - 50**2)
    settings = AplsSettings(variant="nltool", linestring_delta_m=1000, min_path_length_m=10)
    result = apls(_graph(STRAIGHT), _graph([(0, 0), (50, bend), (100, 0)]), settings)
    assert result.truth_to_proposal == pytest.approx(0.8)
    assert result.proposal_to_truth == pytest.approx(5 / 6)
    assert result.apls == pytest.approx(2 * 0.8 * (5 / 6) / (0.8 + 5 / 6))


def test_straight_road_with_one_detour_twenty_percent_longer() -> None:
    """Truth: 100 m straight, control points at x = 0, 50, 100 (delta 50 m). Proposal: the middle
    50 m replaced by a 60 m detour (110 m in all), control points at its ends and at 110/3 and
    220/3 m along it, both on the detour and more than 4 m off the truth.

    Truth→proposal: the point at x = 50 is 16.6 m off the detour and does not snap. Of the 6
    ordered pairs, the 4 with it score 1, the 2 end-to-end pairs score |100 - 110| / 100 = 0.1:
    1 - 4.2 / 6 = 0.3. Proposal→truth: of 12 ordered pairs only the 2 end-to-end pairs snap at both
    ends, scoring |110 - 100| / 110 = 1/11: 1 - (10 + 2/11) / 12 = 5/33.
    """
    result = apls(_graph(STRAIGHT), _graph(DETOUR_MIDDLE))
    assert (result.truth_control_points, result.proposal_control_points) == (3, 4)
    assert (result.truth_paths, result.proposal_paths) == (6, 12)
    assert result.truth_to_proposal == pytest.approx(0.3)
    assert result.proposal_to_truth == pytest.approx(5 / 33)
    assert result.apls == pytest.approx(2 * 0.3 * (5 / 33) / (0.3 + 5 / 33))


def test_swapping_truth_and_proposal_swaps_the_directions() -> None:
    forward = apls(_graph(STRAIGHT), _graph(DETOUR_MIDDLE))
    backward = apls(_graph(DETOUR_MIDDLE), _graph(STRAIGHT))
    assert backward.truth_to_proposal == pytest.approx(forward.proposal_to_truth)
    assert backward.proposal_to_truth == pytest.approx(forward.truth_to_proposal)
    assert backward.apls == pytest.approx(forward.apls)


def test_small_offset_within_snap_distance_scores_one() -> None:
    result = apls(_graph(STRAIGHT), _graph([(0, 3), (100, 3)]))
    assert result.apls == pytest.approx(1.0)


def test_crossing_lines_are_noded_into_a_junction() -> None:
    graph = _graph([(0, 50), (100, 50)], [(50, 0), (50, 100)])
    assert sorted(d for _, d in graph.degree()) == [1, 1, 1, 1, 4]


def test_control_point_sampling_is_seeded() -> None:
    long_road = _graph([(0, 0), (5000, 0)])
    settings = AplsSettings(variant="nltool", linestring_delta_m=50, max_control_points=20, seed=3)
    first, second = apls(long_road, long_road, settings), apls(long_road, long_road, settings)
    assert first.truth_control_points == 20 and first == second
    assert first.apls == pytest.approx(1.0)


def test_settings_are_checked() -> None:
    with pytest.raises(VectorError, match="linestring_delta_m > 0"):
        AplsSettings(linestring_delta_m=0)


def test_results_say_which_metric_they_are() -> None:
    result = apls(_graph(STRAIGHT), _graph(STRAIGHT))
    assert result.variant == "nltool" and "NOT SpaceNet's standard" in result.summary()
    assert result.to_dict()["standard"] is False
    with pytest.raises(VectorError, match="unknown APLS variant"):
        AplsSettings(variant="cosmiq")
