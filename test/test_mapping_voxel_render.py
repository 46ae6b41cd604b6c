import numpy as np
import pytest
from PIL import Image

from ov_mapping.mapping.render import estimate_up, render_views, save_views_png


def room(n=20000, seed=0):
    """A floor (z = 0, red) and a table top (z = 0.7, blue) in a z-up world."""
    rng = np.random.default_rng(seed)
    floor = np.c_[rng.uniform(0, 4, (n, 2)), np.zeros(n)]
    table = np.c_[rng.uniform(1.5, 2.5, (n // 4, 2)), np.full(n // 4, 0.7)]
    points = np.vstack([floor, table])
    colours = np.zeros((len(points), 3), np.uint8)
    colours[:n] = [255, 0, 0]
    colours[n:] = [0, 0, 255]
    return points, colours


def test_top_view_shows_the_table_above_the_floor():
    points, colours = room()
    image = render_views(points, colours, view_size=(120, 100), up=(0, 0, 1))
    assert image.shape == (100, 240, 3) and image.dtype == np.uint8
    top = image[:, :120]
    # The table is in the middle of the room and higher than the floor: the z-buffer shows it there.
    assert (top[50, 60] == [0, 0, 255]).all()
    assert (top[50, 20] == [255, 0, 0]).all()
    assert (image[:, 120:] != 255).any(axis=2).mean() > 0.05  # the perspective view draws something


def test_estimate_up_finds_the_thin_axis():
    points, _ = room()
    up = estimate_up(points)
    assert abs(up[2]) > 0.99 and up[2] > 0  # the denser floor lies below


def test_save_png(tmp_path):
    points, colours = room(2000)
    path = save_views_png(tmp_path / "map.png", points, colours, view_size=(64, 48))
    with Image.open(path) as picture:
        assert picture.size == (128, 48)
    titled = save_views_png(tmp_path / "titled.png", points, colours, title="demo map", view_size=(64, 48))
    with Image.open(titled) as picture:
        assert picture.size == (128, 72)
        assert (np.asarray(picture)[:24] < 128).any()  # the title's text is drawn


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        render_views(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="up"):
        render_views(*room(100), up=(0, 0, 0))
