"""The Minecraft action codec: 23 buttons in the contract's order, 121 camera classes exactly as VPT."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer_data.actions import minecraft as mc


def vpt_discretize(xy: np.ndarray) -> np.ndarray:
    """VPT's CameraQuantizer.discretize (camera_maxval=10, camera_binsize=2, mu_law, mu=10), restated."""
    maxval, binsize, mu = 10, 2, 10
    xy = np.clip(xy, -maxval, maxval)
    xy = xy / maxval
    v_encode = np.sign(xy) * (np.log(1.0 + mu * np.abs(xy)) / np.log(1.0 + mu))
    v_encode *= maxval
    return np.round((v_encode + maxval) / binsize).astype(np.int64)


def vpt_undiscretize(bins: np.ndarray) -> np.ndarray:
    maxval, binsize, mu = 10, 2, 10
    xy = bins * binsize - maxval
    xy = xy / maxval
    v_decode = np.sign(xy) * (1.0 / mu) * ((1.0 + mu) ** np.abs(xy) - 1.0)
    return v_decode * maxval


def bins_of(pitch: float, yaw: float = 0.0) -> tuple[int, int]:
    return tuple(int(b) for b in mc.camera_to_bins(np.array([pitch, yaw])))


def test_constants_match_vpt():
    assert (mc.CAMERA_BINS_PER_AXIS, mc.N_CAMERA_CLASSES, mc.CAMERA_NULL_CLASS) == (11, 121, 60)
    assert mc.CAMERA_DEGREES_PER_MOUSE_UNIT == 360.0 / 2400.0


@pytest.mark.parametrize("degrees, expected_bin", [
    (0.0, 5), (-0.0, 5), (1e-12, 5), (-1e-12, 5),  # no move, either sign of zero
    (10.0, 10), (-10.0, 0), (10.0001, 10), (-10.0001, 0),  # the clip edge
    (180.0, 10), (-180.0, 0), (1e6, 10), (-1e6, 0),  # far outside: clipped to ±10
    # bin 5|6 boundary at v = 1, i.e. x = 11**0.1 - 1 = 0.27098: 10*ln(1.27)/ln(11) = 0.9968 -> 5.498 -> 5
    (0.27, 5), (0.272, 6), (-0.27, 5), (-0.272, 4),  # 10*ln(1.272)/ln(11) = 1.0034 -> 5.502 -> 6
    # 1 degree: 10*ln(2)/ln(11) = 2.8906 -> (12.8906)/2 = 6.445 -> 6; 2 deg: 4.5816 -> 7.29 -> 7
    (1.0, 6), (2.0, 7), (-1.0, 4), (-2.0, 3),
    # 5 deg: 10*ln(6)/ln(11) = 7.4722 -> 8.736 -> 9; 9.999 deg -> 9.99996 -> 10
    (5.0, 9), (-5.0, 1), (9.999, 10), (-9.999, 0),
])
def test_camera_bins_hand_computed(degrees, expected_bin):
    assert bins_of(degrees) == (expected_bin, 5)
    assert bins_of(0.0, degrees) == (5, expected_bin)


def test_camera_class_is_pitch_bin_times_11_plus_yaw_bin():
    cases = {(0.0, 0.0): 60, (10.0, -10.0): 110, (-10.0, 10.0): 10, (10.0, 10.0): 120, (-10.0, -10.0): 0,
             (1.0, 0.0): 6 * 11 + 5, (0.0, 1.0): 5 * 11 + 6, (-2.0, 5.0): 3 * 11 + 9}
    for (pitch, yaw), expected in cases.items():
        assert int(mc.encode_camera(np.array([pitch, yaw]))) == expected, (pitch, yaw)
    classes = mc.encode_camera(np.array(list(cases)))
    assert classes.dtype == np.int16 and classes.tolist() == list(cases.values())


def test_rounding_is_half_to_even_like_numpy():
    """At exact bin boundaries VPT's np.round goes to the even bin (5.5 -> 6, 6.5 -> 6, 8.5 -> 8, 4.5 -> 4)."""
    exact_halves = 0
    for v in (1.0, 3.0, 5.0, 7.0, 9.0, -1.0, -3.0, -5.0, -7.0, -9.0):  # odd mu-law values sit on boundaries
        centre = np.sign(v) * (11.0 ** (abs(v) / 10) - 1.0)
        for step in range(-64, 65):  # look for float inputs whose quantiser input is exactly k + 0.5 here
            x = centre + step * np.spacing(centre)
            xy = x / 10
            q = (np.sign(xy) * np.log(1 + 10 * abs(xy)) / np.log(11) * 10 + 10) / 2
            if q % 1 == 0.5:
                exact_halves += 1
                assert bins_of(x)[0] == int(q) + (int(q) % 2), (x, q)  # the even neighbour
    assert exact_halves >= 10  # several exact ties were really exercised


def test_encode_matches_vpt_quantizer_on_many_inputs():
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(0, 4, (5000, 2)), rng.uniform(-200, 200, (1000, 2)),
                         rng.normal(0, 0.3, (2000, 2)), np.array([[0.0, -0.0], [-0.0, 0.0], [10, -10]])])
    expected = vpt_discretize(xy)
    np.testing.assert_array_equal(mc.camera_to_bins(xy), expected)
    np.testing.assert_array_equal(mc.encode_camera(xy), expected[:, 0] * 11 + expected[:, 1])
    # float32 input (what the store keeps in camera_deg) gives the same classes as VPT fed float32
    xy32 = xy.astype(np.float32)
    np.testing.assert_array_equal(mc.camera_to_bins(xy32), vpt_discretize(xy32.astype(np.float64)))


def test_decode_inverts_at_bin_centres():
    classes = np.arange(121)
    degrees = mc.decode_camera(classes)
    assert degrees.shape == (121, 2)
    np.testing.assert_array_equal(mc.encode_camera(degrees), classes)
    np.testing.assert_array_equal(degrees[60], [0.0, 0.0])
    bins = np.stack([classes // 11, classes % 11], axis=-1)
    np.testing.assert_allclose(degrees, vpt_undiscretize(bins), rtol=0, atol=1e-12)
    # bin centres of one axis, by hand: sign * (11 ** (|2b - 10| / 10) - 1)
    centres = mc.bins_to_camera(np.array([[b, 5] for b in range(11)]))[:, 0]
    hand = [-10.0, -5.80948, -3.21537, -1.60950, -0.61539, 0.0, 0.61539, 1.60950, 3.21537, 5.80948, 10.0]
    np.testing.assert_allclose(centres, hand, atol=1e-5)


def test_decode_rejects_out_of_range_classes():
    for bad in (-1, 121, 1000):
        with pytest.raises(ValueError):
            mc.decode_camera(np.array([bad]))


def test_button_order_is_the_contract():
    assert mc.BUTTONS == (
        "ESC", "back", "drop", "forward", "hotbar.1", "hotbar.2", "hotbar.3", "hotbar.4", "hotbar.5",
        "hotbar.6", "hotbar.7", "hotbar.8", "hotbar.9", "inventory", "jump", "left", "right", "sneak",
        "sprint", "swapHands", "attack", "use", "pickItem")
    assert mc.N_BUTTONS == 23
    assert all(mc.BUTTON_INDEX[name] == i for i, name in enumerate(mc.BUTTONS))


def test_key_mapping_is_vpts():
    expected = {"escape": "ESC", "s": "back", "q": "drop", "w": "forward", "e": "inventory", "space": "jump",
                "a": "left", "d": "right", "left.shift": "sneak", "left.control": "sprint", "f": "swapHands",
                **{str(i): f"hotbar.{i}" for i in range(1, 10)}}
    assert mc.KEYBOARD_TO_BUTTON == {f"key.keyboard.{key}": button for key, button in expected.items()}
    assert mc.MOUSE_TO_BUTTON == {0: "attack", 1: "use", 2: "pickItem"}


def test_action_spec_describes_the_arrays():
    spec = mc.action_spec()
    assert spec["buttons"]["names"] == list(mc.BUTTONS) and spec["buttons"]["size"] == 23
    assert spec["camera"]["size"] == 121 and spec["camera"]["null_class"] == 60
    assert spec["camera"]["encoding"]["mu"] == 10 and spec["camera"]["encoding"]["maxval_deg"] == 10
    assert spec["camera_deg"]["names"] == ["pitch", "yaw"]
