"""Frames drawn with numpy only, for the worlds that have no physics renderer (the factored
worlds and the bandits; docs/worlds.md, "Rendering").

A frame is a ``(FRAME_HEIGHT, FRAME_WIDTH, 3)`` uint8 array: one horizontal band per section
(e.g. state, action, reward), each a row of vertical bars around a grey zero line, a bar's colour
saying what the entry is (reward-relevant or not, intervened or not). A section either has a
fixed scale (bounded actions) or is scaled by the largest magnitude it has shown since the last
reset (:class:`BarCanvas`), so a frame needs no text. A value beyond its scale is drawn to the
band's edge with a black cap. No matplotlib, no fonts: worlds stay light and headless.

The MuJoCo worlds render through gymnasium's MuJoCo renderer (:func:`mujoco_frame`), which needs
an OpenGL backend: ``MUJOCO_GL=egl`` (GPU or Mesa) or ``osmesa`` (software) without a display.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COLOURS",
    "FRAME_HEIGHT",
    "FRAME_WIDTH",
    "BarCanvas",
    "Bars",
    "bar_frame",
    "check_render_mode",
    "framed",
    "mujoco_frame",
]

FRAME_HEIGHT, FRAME_WIDTH = 240, 320
#: the colours every bar frame uses (RGB), colour-blind safe (Okabe-Ito)
COLOURS = {
    "relevant": (0, 114, 178),      # reward-relevant state, non-reward node
    "irrelevant": (160, 160, 160),  # distractor state, reward-irrelevant action
    "action": (213, 94, 0),         # reward-relevant action, intervened node
    "reward": (0, 158, 115),        # reward (and the reward node)
    "expected": (86, 180, 233),     # a bandit arm's expected reward
    "optimal": (0, 0, 0),           # the best arm's expected reward
    "intervened": (230, 159, 0),    # the frame's border while an expert acts
}
_BACKGROUND, _ZERO_LINE, _SEPARATOR, _CAP = 255, (150, 150, 150), (215, 215, 215), (0, 0, 0)
_MARGIN = 6


@dataclass(frozen=True)
class Bars:
    """One band of a frame.

    :param name: the section's name (its running scale is kept under it).
    :param values: the bars' values, one per bar.
    :param colours: one RGB triple for every bar, or one per bar.
    :param scale: the magnitude drawn to the band's edge. Default None: the largest magnitude the
        section has shown since the last reset (:class:`BarCanvas`).
    """

    name: str
    values: np.ndarray
    colours: tuple | list
    scale: float | None = None


def check_render_mode(render_mode, env_class: type) -> str | None:
    """``render_mode`` when it is None or one of ``env_class.metadata["render_modes"]``.

    :param render_mode: what the caller asked for.
    :param env_class: the world's class.
    :return: ``render_mode``.
    :raises ValueError: one line naming the modes the world has.
    """
    modes = env_class.metadata.get("render_modes", [])
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode: {env_class.__name__} renders {modes} only, got {render_mode!r}; use "
                         f"render_mode='rgb_array' (or None)")
    return render_mode


def _band(frame: np.ndarray, top: int, height: int, bars: Bars, scale: float) -> None:
    values = np.nan_to_num(np.asarray(bars.values, dtype=float).reshape(-1), nan=0.0)
    colours = np.asarray(bars.colours, dtype=np.uint8).reshape(-1, 3)
    colours = np.broadcast_to(colours, (len(values), 3)) if len(colours) == 1 else colours
    middle, reach = top + height // 2, height // 2 - _MARGIN
    frame[middle, _MARGIN:FRAME_WIDTH - _MARGIN] = _ZERO_LINE
    if not len(values):
        return
    slot = (FRAME_WIDTH - 2 * _MARGIN) / len(values)
    width = max(1, min(int(slot * 0.7), 60))
    for index, (value, colour) in enumerate(zip(values, colours)):
        left = int(_MARGIN + index * slot + (slot - width) / 2)
        fraction = float(np.clip(value / scale, -1.0, 1.0)) if scale > 0 else 0.0
        size = round(abs(fraction) * reach)
        low, high = (middle - size, middle) if fraction >= 0 else (middle + 1, middle + 1 + size)
        frame[low:high, left:left + width] = colour
        if abs(value) > scale > 0:  # clipped: a black cap at the band's edge
            cap = middle - reach if value > 0 else middle + reach - 1
            frame[cap:cap + 2, left:left + width] = _CAP


def bar_frame(sections: list[Bars], scales: dict[str, float] | None = None) -> np.ndarray:
    """A ``(FRAME_HEIGHT, FRAME_WIDTH, 3)`` uint8 frame: one band per section, top to bottom.

    :param sections: the bands.
    :param scales: the scale of each section without a fixed one. Default None: each section's
        own largest magnitude.
    :return: the frame.
    """
    frame = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), _BACKGROUND, dtype=np.uint8)
    height = FRAME_HEIGHT // max(1, len(sections))
    for index, bars in enumerate(sections):
        top = index * height
        if index:
            frame[top, :] = _SEPARATOR
        scale = bars.scale
        if scale is None:
            scale = (scales or {}).get(bars.name, float(np.max(np.abs(bars.values), initial=0.0)))
        _band(frame, top, height, bars, float(scale))
    return frame


def framed(frame: np.ndarray, colour=COLOURS["intervened"], width: int = 6) -> np.ndarray:
    """``frame`` with a border of ``colour`` (a copy): marks frames where an expert acted."""
    frame = np.array(frame, dtype=np.uint8, copy=True)
    frame[:width], frame[-width:], frame[:, :width], frame[:, -width:] = colour, colour, colour, colour
    return frame


class BarCanvas:
    """Draws a world's bar frames and keeps each section's running scale (the largest magnitude it
    has shown since :meth:`reset`), so bars of one episode stay comparable."""

    def __init__(self):
        self.scales: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the running scales (call it on the world's reset)."""
        self.scales.clear()

    def frame(self, sections: list[Bars]) -> np.ndarray:
        """The frame of ``sections``, updating the running scales.

        :param sections: the bands, top to bottom.
        :return: a ``(FRAME_HEIGHT, FRAME_WIDTH, 3)`` uint8 array.
        """
        for bars in sections:
            if bars.scale is None:
                largest = float(np.max(np.abs(np.nan_to_num(np.asarray(bars.values, dtype=float))), initial=0.0))
                self.scales[bars.name] = max(self.scales.get(bars.name, 0.0), largest, 1e-12)
        return bar_frame(sections, self.scales)


def mujoco_frame(render, world: str):
    """``render()`` of a MuJoCo renderer, on a machine without a display too.

    With no ``MUJOCO_GL`` chosen and no display (Linux), gymnasium's renderer would try GLFW, which
    needs one, and fail inside MuJoCo; ``MUJOCO_GL=egl`` is set first instead (headless OpenGL
    through EGL, the backend MuJoCo documents for servers).

    :param render: a callable returning the frame (the renderer's ``render``).
    :param world: the world's name, for the error.
    :return: the frame.
    :raises RuntimeError: one line naming ``MUJOCO_GL`` when no OpenGL context can be made.
    """
    if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["MUJOCO_GL"] = "egl"
    try:
        return render()
    except Exception as error:  # mujoco.FatalError, ImportError of a GL library, RuntimeError from gymnasium
        if "gl" not in f"{type(error).__name__} {error}".lower():
            raise
        text = " ".join(str(error).split())[:160]
        raise RuntimeError(f"render: {world} could not open an OpenGL context with MUJOCO_GL="
                           f"{os.environ.get('MUJOCO_GL', '(unset)')} ({text}); set MUJOCO_GL=egl or MUJOCO_GL=osmesa "
                           f"before starting Python") from None
