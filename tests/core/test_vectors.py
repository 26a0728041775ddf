"""The vectorizer on synthetic masks of known geometry: lengths, junctions, gaps, spurs, CRS round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("sknw", reason="the [vector] extra (sknw, scikit-image, shapely, pyproj) is not installed")

from nltool.errors import VectorError
from nltool.vectors import RasterFrame, VectorizeSettings, vectorize_array, vectorize_file
from nltool.vectors.io import read_lines, write_network

PIXEL = 0.5  # metres per pixel assumed for arrays without georeferencing


def _road(size: int = 200) -> np.ndarray:
    """A horizontal road 9 px wide from x = 20 to x = 180 (160 px = 80 m)."""
    mask = np.zeros((size, size), bool)
    mask[96:105, 20:180] = True
    return mask


def _degrees(network) -> list[int]:
    return sorted(node.degree for node in network.nodes)


def test_straight_road_length_within_two_percent_and_width() -> None:
    network = vectorize_array(_road())
    assert len(network.edges) == 1 and network.junctions == 0
    assert network.total_length_m == pytest.approx(160 * PIXEL, rel=0.02)
    assert network.edges[0].width_m == pytest.approx(9 * PIXEL, rel=0.1)


def test_diagonal_road_length_within_two_percent() -> None:
    canvas = Image.new("L", (300, 300))
    ImageDraw.Draw(canvas).line([(40, 60), (260, 200)], fill=255, width=11)
    network = vectorize_array(np.asarray(canvas) > 0)
    assert len(network.edges) == 1
    assert network.total_length_m == pytest.approx(np.hypot(220, 140) * PIXEL, rel=0.02)


def test_crossing_is_one_junction_of_degree_four() -> None:
    mask = _road()
    mask[20:180, 96:105] = True
    network = vectorize_array(mask)
    assert network.junctions == 1
    assert _degrees(network) == [1, 1, 1, 1, 4]
    assert network.total_length_m == pytest.approx(2 * 160 * PIXEL, rel=0.02)


def test_t_junction_is_one_junction_of_degree_three() -> None:
    mask = _road()
    mask[100:180, 96:105] = True
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1, 1, 3]
    assert len(network.edges) == 3


def test_gap_of_three_pixels_is_joined_and_forty_is_not() -> None:
    small, large = _road(), _road()
    small[:, 101:104] = False
    large[:, 80:120] = False
    joined = vectorize_array(small)
    assert len(joined.edges) == 1 and _degrees(joined) == [1, 1]
    assert joined.total_length_m == pytest.approx(160 * PIXEL, rel=0.02)
    apart = vectorize_array(large)
    assert len(apart.edges) == 2 and _degrees(apart) == [1, 1, 1, 1]


def test_five_pixel_spur_is_pruned() -> None:
    mask = _road()
    mask[91:96, 60:64] = True  # a bump 5 px out of the road's edge
    unpruned = vectorize_array(mask, settings=VectorizeSettings(spur_m=0))
    assert unpruned.junctions == 1, "the bump makes a skeleton branch"
    network = vectorize_array(mask)
    assert network.junctions == 0 and len(network.edges) == 1
    assert network.total_length_m == pytest.approx(160 * PIXEL, rel=0.02)


def _drawn(size: tuple[int, int], lines: list[list[tuple[float, float]]], width: int) -> np.ndarray:
    """A mask of straight roads drawn by Pillow (pixel (i, j) centred on (i + 0.5, j + 0.5) in our coordinates)."""
    canvas = Image.new("L", size)
    for line in lines:
        ImageDraw.Draw(canvas).line(line, fill=255, width=width)
    return np.asarray(canvas) > 0


def test_bump_on_a_wide_road_is_pruned_but_a_side_road_is_not() -> None:
    mask = np.zeros((200, 300), bool)
    mask[85:116, 20:280] = True  # 31 px = 15.5 m wide
    mask[77:85, 140:150] = True  # a bump 8 px (4 m) out: its skeleton branch is about 12 m long
    assert vectorize_array(mask).junctions == 0
    mask[40:85, 140:150] = True  # a side road reaching 45 px (22.5 m) out
    assert _degrees(vectorize_array(mask)) == [1, 1, 1, 3]


def test_wide_roads_crossing_at_a_shallow_angle_make_one_junction() -> None:
    # two 10.5 m wide roads crossing at 50 degrees: thinning alone makes two junctions 5 m apart
    dx, dy = 180 * np.cos(np.radians(25)), 180 * np.sin(np.radians(25))
    mask = _drawn((400, 400), [[(200 - dx, 200 - dy), (200 + dx, 200 + dy)],
                               [(200 - dx, 200 + dy), (200 + dx, 200 - dy)]], 21)
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1, 1, 1, 4]
    (junction,) = (node.xy for node in network.nodes if node.degree == 4)
    assert junction == pytest.approx((200.5, 200.5), abs=1.5)


def test_wide_road_leaving_the_image_obliquely_ends_where_its_centre_line_does() -> None:
    mask = _drawn((300, 300), [[(60, 83), (360, 284)]], 31)  # leaves through x = 300 at y = 244.3
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1], "no fork where the road meets the image's edge"
    edge_end = max((node.xy for node in network.nodes), key=lambda xy: xy[0])
    assert edge_end == pytest.approx((300, 244.3), abs=1.5)


@pytest.mark.parametrize("angle", [12, 20])
def test_road_leaving_the_image_at_a_shallow_angle_reaches_the_edge_where_its_centre_line_does(angle: float) -> None:
    along = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle))])  # ``angle`` off the edge x = 300
    crossing = np.array([300.0, 150.0])
    mask = _buffered((300, 300), [tuple(crossing - 140 * along), tuple(crossing + 60 * along)], 20)
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1]
    edge_end = max((node.xy for node in network.nodes), key=lambda xy: xy[0])
    assert edge_end[0] == pytest.approx(300)
    assert abs(edge_end[1] - crossing[1]) * PIXEL < 3.0  # before: 8-17 m short, bent towards the edge


def test_wide_road_drawn_at_an_angle_ends_in_one_dead_end_of_the_right_length() -> None:
    mask = _drawn((500, 400), [[(150, 120), (400, 300)]], 31)  # butt ends across the road
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1]
    assert network.total_length_m == pytest.approx(np.hypot(250, 180) * PIXEL, rel=0.02)


def _buffered(size: tuple[int, int], line: list[tuple[float, float]], width: float, circle: float = 0.0) -> np.ndarray:
    """A road buffered around its centre line (round caps, as SpaceNet's masks are made), with a turning
    circle of radius ``circle`` at its last point."""
    import shapely

    shape = shapely.LineString(line).buffer(width / 2, quad_segs=16)
    if circle:
        shape = shape.union(shapely.Point(line[-1]).buffer(circle, quad_segs=16))
    canvas = Image.new("1", size)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in np.asarray(shape.exterior.coords) - 0.5], fill=1)
    return np.asarray(canvas, bool)


@pytest.mark.parametrize(("width", "angle", "circle"), [(16, 0, 0), (20, 50, 0), (13, 40, 20)])
def test_rounded_road_ends_and_turning_circles_end_at_their_centre(width: float, angle: float, circle: float) -> None:
    start = np.array([60.0, 100.0])
    end = start + 250 * np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    network = vectorize_array(_buffered((400, 400), [tuple(start), tuple(end)], width, circle))
    assert _degrees(network) == [1, 1]
    first, last = sorted((node.xy for node in network.nodes), key=lambda xy: xy[0])
    assert np.hypot(*(first - start)) * PIXEL < 1.5  # not at the cap's far side, a half width (4-5 m) on
    assert np.hypot(*(last - end)) * PIXEL < 1.5  # not at the turning circle's far side, 10 m on


@pytest.mark.parametrize("angle", [15, 25, 35])
def test_road_leaving_another_at_a_shallow_angle_keeps_its_junction_where_the_centre_lines_meet(angle: float) -> None:
    import shapely

    junction = np.array([150.0, 250.0])
    branch = junction + 300 * np.array([np.cos(np.radians(angle)), -np.sin(np.radians(angle))])
    shape = shapely.union_all([shapely.LineString([(0, 250), (400, 250)]).buffer(8, quad_segs=16),
                               shapely.LineString([tuple(junction), tuple(branch)]).buffer(8, quad_segs=16)])
    canvas = Image.new("1", (400, 400))
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in np.asarray(shape.exterior.coords) - 0.5], fill=1)
    network = vectorize_array(np.asarray(canvas, bool))
    assert _degrees(network) == [1, 1, 1, 3]
    (found,) = (node.xy for node in network.nodes if node.degree == 3)
    assert np.hypot(*(found - junction)) * PIXEL < 1.5  # before: 7-25 m along the shared pavement


def test_roundabout_stays_a_loop_with_its_four_junctions_in_place() -> None:
    import shapely

    centre, radius = np.array([200.0, 200.0]), 40.0
    directions = [np.array(d, float) for d in ((1, 0), (0, 1), (-1, 0), (0, -1))]
    shapes = [shapely.Point(*centre).buffer(radius + 9, quad_segs=32).difference(
        shapely.Point(*centre).buffer(radius - 9, quad_segs=32))]
    shapes += [shapely.LineString([tuple(centre + radius * d), tuple(centre + 200 * d)]).buffer(7) for d in directions]
    ring = shapely.union_all(shapes)
    canvas = Image.new("1", (400, 400))
    draw = ImageDraw.Draw(canvas)
    draw.polygon([tuple(p) for p in np.asarray(ring.exterior.coords) - 0.5], fill=1)
    for hole in ring.interiors:
        draw.polygon([tuple(p) for p in np.asarray(hole.coords) - 0.5], fill=0)
    network = vectorize_array(np.asarray(canvas, bool))
    assert _degrees(network) == [1, 1, 1, 1, 3, 3, 3, 3]
    assert len(network.edges) == 8  # four legs and four arcs: the ring is kept
    for d in directions:
        nearest = min(np.hypot(*(node.xy - centre - radius * d)) for node in network.nodes if node.degree == 3)
        assert nearest * PIXEL < 1.0


@pytest.mark.parametrize("median", [6, 16])
def test_street_crossing_a_dual_carriageway_makes_two_crossings(median: int) -> None:
    offset = (16 + median) / 2  # two 8 m carriageways either side of a 3 m or 8 m median
    mask = _drawn((400, 400), [[(0, 200 - offset), (400, 200 - offset)], [(0, 200 + offset), (400, 200 + offset)]], 16)
    mask |= _drawn((400, 400), [[(200, 0), (200, 400)]], 14)
    network = vectorize_array(mask)
    assert _degrees(network) == [1, 1, 1, 1, 1, 1, 4, 4]  # before: one junction of degree 6 between them
    crossings = sorted(node.xy[1] for node in network.nodes if node.degree == 4)
    assert crossings == pytest.approx([200.5 - offset, 200.5 + offset], abs=2)


def test_small_blobs_are_dropped_and_short_pieces_too() -> None:
    mask = _road()
    mask[20:24, 20:24] = True  # 16 px = 4 m², under min_object_m2
    mask[150:155, 30:50] = True  # a 20 px (10 m) piece, under min_component_m
    network = vectorize_array(mask)
    assert len(network.edges) == 1


def test_empty_mask_gives_an_empty_feature_collection(tmp_path: Path) -> None:
    network = vectorize_array(np.zeros((64, 64), bool))
    assert network.edges == [] and network.nodes == []
    out = write_network(network, tmp_path / "empty.geojson")
    data = json.loads(out.read_text())
    assert data["type"] == "FeatureCollection" and data["features"] == []


def test_probability_image_without_threshold_uses_one_half(tmp_path: Path) -> None:
    prob = np.full((200, 200), 0.4)
    prob[96:105, 20:180] = 0.6
    Image.fromarray(np.rint(prob * 255).astype(np.uint8)).save(tmp_path / "prob.png")
    network = vectorize_file(tmp_path / "prob.png")
    assert len(network.edges) == 1
    assert network.total_length_m == pytest.approx(80, rel=0.02)
    everything = vectorize_file(tmp_path / "prob.png", VectorizeSettings(threshold=0.3))
    assert everything.total_length_m != pytest.approx(80, rel=0.02)


def test_png_network_is_in_pixel_coordinates_and_says_so(tmp_path: Path) -> None:
    Image.fromarray(_road().astype(np.uint8) * 255).save(tmp_path / "mask.png")
    network = vectorize_file(tmp_path / "mask.png", pixel_size_m=1.0)
    data = network.to_geojson()
    assert data["nltool"]["coordinates"] == "pixel" and data["nltool"]["pixel_size_m"] == [1.0, 1.0]
    line = next(f for f in data["features"] if f["geometry"]["type"] == "LineString")
    xs = [p[0] for p in line["geometry"]["coordinates"]]
    assert min(xs) == pytest.approx(20, abs=1) and max(xs) == pytest.approx(180, abs=1)
    assert line["properties"]["length_m"] == pytest.approx(160, rel=0.02)


def test_geotiff_network_round_trips_crs_and_coordinates(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
    from pyproj import Transformer
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "height": 200, "width": 200, "count": 1, "dtype": "uint8", "crs": "EPSG:32630",
               "transform": from_origin(400000, 4000000, 0.5, 0.5)}
    with rasterio.open(tmp_path / "mask.tif", "w", **profile) as dst:
        dst.write(_road().astype(np.uint8) * 255, 1)
    network = vectorize_file(tmp_path / "mask.tif")
    geojson = json.loads(write_network(network, tmp_path / "roads.geojson").read_text())
    gpkg = read_lines(write_network(network, tmp_path / "roads.gpkg"))
    assert "crs" not in geojson  # RFC 7946: WGS 84 only, no crs member
    (lon0, lat0), (lon1, lat1) = (geojson["features"][0]["geometry"]["coordinates"][i] for i in (0, -1))
    back = Transformer.from_crs("EPSG:4326", "EPSG:32630", always_xy=True)
    west, east = sorted([back.transform(lon0, lat0), back.transform(lon1, lat1)])
    # the road's centre line: x from 400010 to 400090, y = 4000000 - 100.5 px × 0.5 m
    assert west == pytest.approx((400010, 3999949.75), abs=1.0)
    assert east == pytest.approx((400090, 3999949.75), abs=1.0)
    assert "32630" in str(gpkg.crs)
    (line,) = gpkg.lines
    ends = sorted(map(tuple, line[[0, -1]]))
    assert np.allclose(ends, [west, east], atol=0.01)
    assert geojson["features"][0]["properties"]["length_m"] == pytest.approx(80, rel=0.02)


def test_geojson_without_lines_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}))
    with pytest.raises(VectorError, match="holds no LineString"):
        read_lines(path)


def test_settings_are_checked() -> None:
    with pytest.raises(VectorError, match="threshold must be in"):
        VectorizeSettings(threshold=1.5)
    with pytest.raises(VectorError, match="gap_m must be a non-negative"):
        VectorizeSettings(gap_m=-1)


def test_frame_pixel_size_of_a_geographic_raster() -> None:
    frame = RasterFrame(100, 100, (0.00001, 0, 10.0, 0, -0.00001, 50.0), "EPSG:4326")
    scale = frame.pixel_scale()
    assert scale.y == pytest.approx(1.11, rel=0.01) and scale.x == pytest.approx(0.716, rel=0.01)


def test_strips_equal_the_whole_image_on_a_scene_crossing_strip_borders() -> None:
    from nltool.synthetic import render_scene, scene_rng

    _, mask = render_scene(512, scene_rng(0, 3), occluders=False)
    frame = RasterFrame(512, 512)
    whole = vectorize_array(mask > 0, frame)
    strips = vectorize_array(mask > 0, frame, strip_rows=128)
    assert whole.junctions >= 3
    assert strips.total_length_m == pytest.approx(whole.total_length_m, rel=0.01)
    assert strips.junctions == whole.junctions
    assert len(strips.edges) == len(whole.edges)


def test_streamed_rows_in_small_blocks_give_the_same_network() -> None:
    from nltool.vectors import StripVectorizer

    mask = _road(300)
    mask[20:280, 150:159] = True
    frame = RasterFrame(300, 300)
    vectorizer = StripVectorizer(frame, strip_rows=64)
    for y0 in range(0, 300, 37):
        vectorizer.write_rows(y0, mask[y0:y0 + 37].astype(np.float32))
    streamed = vectorizer.finish()
    whole = vectorize_array(mask, frame)
    assert streamed.junctions == whole.junctions == 1
    assert streamed.total_length_m == pytest.approx(whole.total_length_m, rel=0.01)


def test_cli_vectorize_and_apls(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nltool.app.cli import app

    runner = CliRunner()
    Image.fromarray(_road().astype(np.uint8) * 255).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "empty.png")
    result = runner.invoke(app, ["vectorize", str(tmp_path / "mask.png"), "--out", str(tmp_path / "roads.geojson")])
    assert result.exit_code == 0, result.output
    assert "1 lines, 0 junctions" in result.output and "no georeferencing" in result.output
    empty = runner.invoke(app, ["vectorize", str(tmp_path / "empty.png"), "--out", str(tmp_path / "empty.geojson")])
    assert empty.exit_code == 0, empty.output
    assert json.loads((tmp_path / "empty.geojson").read_text())["features"] == []
    scored = runner.invoke(app, ["apls", "--truth", str(tmp_path / "mask.png"), "--proposal",
                                 str(tmp_path / "roads.geojson"), "--json", str(tmp_path / "apls.json")])
    assert scored.exit_code == 0, scored.output
    assert scored.output.startswith("APLS 1.0000")
    assert json.loads((tmp_path / "apls.json").read_text())["apls"] == pytest.approx(1.0)
    points = tmp_path / "points.geojson"
    points.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    refused = runner.invoke(app, ["apls", "--truth", str(points), "--proposal", str(tmp_path / "roads.geojson")])
    assert refused.exit_code == 1 and "holds no LineString" in refused.output
