"""Object fidelity (dreamer_model/eval/objects.py) on hand-made frames: the rule restated, cell by cell.

Breakout's channels are paddle, ball, trail, brick; the ``vivid`` palette draws them red (255, 64, 64),
green (64, 255, 64), blue (64, 160, 255) and yellow (255, 230, 64) over black, 2x2 pixels per cell at 20x20.
"""

import math

import numpy as np
import pytest

from dreamer_data.collect.minatar_render import render_grids, top_channels
from dreamer_model.eval.objects import CellCounts

CHANNELS = ["paddle", "ball", "trail", "brick"]
RED, GREEN, BLUE, YELLOW = (255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 230, 64)


def counts() -> CellCounts:
    return CellCounts.for_observation({"grid_channels": CHANNELS, "palette": "vivid"})


def scene() -> tuple[np.ndarray, np.ndarray]:
    """One breakout state: paddle at (9, 2), ball at (3, 4), trail at (4, 5), bricks in row 1 columns 0-9."""
    grid = np.zeros((1, 10, 10, 4), dtype=np.uint8)
    grid[0, 9, 2, 0] = grid[0, 3, 4, 1] = grid[0, 4, 5, 2] = 1
    grid[0, 1, :, 3] = 1
    frame = np.zeros((1, 20, 20, 3), dtype=np.uint8)
    for (row, col), colour in [((9, 2), RED), ((3, 4), GREEN), ((4, 5), BLUE),
                               *[((1, c), YELLOW) for c in range(10)]]:
        frame[0, 2 * row:2 * row + 2, 2 * col:2 * col + 2] = colour
    return frame, grid


def test_an_exact_frame_scores_every_object_fully():
    frame, grid = scene()
    cells = counts()
    cells.add(frame, grid)
    rates = cells.rates()
    assert {name: (r["recall"], r["precision"], r["cells"]) for name, r in rates.items()} == {
        "paddle": (1.0, 1.0, 1), "ball": (1.0, 1.0, 1), "trail": (1.0, 1.0, 1), "brick": (1.0, 1.0, 10)}


def test_a_painted_over_ball_has_zero_recall_and_no_precision_claim():
    frame, grid = scene()
    frame[0, 6:8, 8:10] = 0  # the ball's cell drawn as background
    cells = counts()
    cells.add(frame, grid)
    rates = cells.rates()
    assert rates["ball"]["recall"] == 0.0 and math.isnan(rates["ball"]["precision"])
    assert rates["paddle"]["recall"] == rates["brick"]["recall"] == 1.0


def test_a_ball_in_the_wrong_cell_misses_and_is_a_false_positive():
    frame, grid = scene()
    frame[0, 6:8, 8:10] = 0
    frame[0, 10:12, 0:2] = GREEN  # drawn at (5, 0) instead of (3, 4)
    cells = counts()
    cells.add(frame, grid)
    assert cells.rates()["ball"] == {"recall": 0.0, "precision": 0.0, "cells": 1}


def test_a_cell_is_drawn_as_the_palette_colour_nearest_its_mean():
    frame, grid = scene()
    # a faint ball: mean (20, 80, 20) is 84.9 from black and 185.7 from green → background
    frame[0, 6:8, 8:10] = (20, 80, 20)
    faint = counts()
    faint.add(frame, grid)
    assert faint.rates()["ball"]["recall"] == 0.0
    # half the cell's pixels green, half a paler green: mean (64, 205, 64) is nearest green → drawn
    frame[0, 6, 8:10], frame[0, 7, 8:10] = GREEN, (64, 155, 64)
    half = counts()
    half.add(frame, grid)
    assert half.rates()["ball"]["recall"] == 1.0
    # a paddle drawn in the ball's green is a ball there, not a paddle
    frame, grid = scene()
    frame[0, 18:20, 4:6] = GREEN
    wrong_colour = counts()
    wrong_colour.add(frame, grid)
    assert wrong_colour.rates()["paddle"]["recall"] == 0.0
    assert wrong_colour.rates()["ball"]["precision"] == 0.5


def test_float_reconstructions_and_counts_over_batches():
    frame, grid = scene()
    erased = frame.copy()
    erased[0, 6:8, 8:10] = 0
    cells = counts()
    cells.add(frame.astype(np.float32) + 3.0, grid)  # small float error: still drawn
    cells.add(erased, grid)
    assert cells.rates()["ball"] == {"recall": 0.5, "precision": 1.0, "cells": 2}
    assert cells.flat("cells_")["cells_recall/ball"] == 0.5


def test_overlapping_channels_show_the_highest_as_the_display_does():
    frame, grid = scene()
    grid[0, 3, 4, 2] = 1  # trail set under the ball's cell: MinAtar shows the higher channel (trail)
    frame[0, 6:8, 8:10] = BLUE
    cells = counts()
    cells.add(frame, grid)
    rates = cells.rates()
    assert rates["trail"] == {"recall": 1.0, "precision": 1.0, "cells": 2}
    assert rates["ball"]["cells"] == 0 and math.isnan(rates["ball"]["recall"])


def test_the_truth_follows_the_stores_draw_order():
    """A store drawn in the ``objects`` order shows breakout's ball over its trail and the bricks: the truth
    the metric scores against is what the store's frames show, for either order."""
    _, grid = scene()
    grid[0, 3, 4, 2] = grid[0, 3, 4, 3] = 1  # trail and a brick under the ball, as at every episode's start
    for order, shown in (("objects", "ball"), ("minatar", "brick")):
        observation = {"grid_channels": CHANNELS, "palette": "vivid", "game": "breakout", "draw_order": order}
        frame = render_grids(grid, (20, 20), "vivid", top_channels("breakout", CHANNELS, order))
        assert tuple(frame[0, 6, 8]) == (GREEN if shown == "ball" else YELLOW)
        cells = CellCounts.for_observation(observation)
        cells.add(frame, grid)
        rates = cells.rates()
        assert all(r["recall"] == 1.0 for r in rates.values() if r["cells"])
        assert rates["ball"]["cells"] == (1 if shown == "ball" else 0)


def test_cells_of_unequal_pixel_counts_at_64x64():
    """At 64x64 cells are 6 or 7 pixels wide; the store's renderer draws the grid, the metric reads it back."""
    _, grid = scene()
    frame = render_grids(grid, (64, 64), "vivid")
    cells = counts()
    cells.add(frame, grid)
    assert all(r["recall"] == 1.0 and r["precision"] == 1.0 for r in cells.rates().values())
    frame[0, 20:26, 26:32] = 0  # rows 20-25 and columns 26-31 are exactly cell (3, 4) at 64 px (r·10 // 64)
    erased = counts()
    erased.add(frame, grid)
    assert erased.rates()["ball"]["recall"] == 0.0


def test_mismatched_inputs_are_refused():
    frame, grid = scene()
    with pytest.raises(ValueError, match="do not match"):
        counts().add(frame, grid[:, :, :, :3])
    with pytest.raises(ValueError, match="need 5 colours"):
        CellCounts(CHANNELS, np.zeros((3, 3), dtype=np.uint8))
    assert CellCounts.for_observation({"height": 64}) is None  # not a MinAtar store
