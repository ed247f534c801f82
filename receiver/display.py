"""`vrecv --display`: a window (SDL2 through pygame) showing the reconstructed video.

A small overlay in the corner gives media kbps, fps, latency and frames
lost. pygame is imported only when a window is asked for, so the rest of
vsa never needs it.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch


class DisplayError(Exception):
    """No window can be opened here."""


def check_display_available() -> None:
    """Raise DisplayError, with a hint, where no window can be opened."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DisplayError("--display needs a screen, but neither DISPLAY nor WAYLAND_DISPLAY is set "
                           "(use --output FILE.mp4, or run under xvfb-run)")
    try:
        import pygame  # noqa: F401
    except ImportError:
        raise DisplayError("--display needs pygame: pip install 'vsa[display]'") from None


class Display:
    def __init__(self, title: str = "vrecv") -> None:
        check_display_available()
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pg = pygame
        try:
            pygame.display.init()
            pygame.font.init()
        except pygame.error as exc:
            raise DisplayError(f"cannot open a window: {exc}") from None
        self.title = title
        self.window = None
        self.font = pygame.font.Font(None, 18)
        self.closed = False
        self.shown = 0

    def show(self, frame: torch.Tensor, overlay: dict) -> None:
        """Draw one (3, H, W) float frame in [0, 1] with the overlay; keeps the window responsive."""
        pg = self._pg
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key in (pg.K_ESCAPE, pg.K_q)):
                self.closed = True
        rgb = frame.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        h, w = rgb.shape[:2]
        if self.window is None or self.window.get_size() != (w, h):
            try:
                self.window = pg.display.set_mode((w, h))
            except pg.error as exc:
                raise DisplayError(f"cannot open a window: {exc}") from None
            pg.display.set_caption(self.title)
        surface = pg.image.frombuffer(np.ascontiguousarray(rgb).tobytes(), (w, h), "RGB")
        self.window.blit(surface, (0, 0))
        if overlay:
            text = (f"{overlay.get('media_kbps', 0):.1f} kbps  {overlay.get('fps', 0):.0f} fps  "
                    f"{overlay.get('latency_ms', 0):.0f} ms  lost {overlay.get('lost', 0)}")
            if overlay.get("model_version"):
                text += f"  model v{overlay['model_version']} (+{overlay.get('update_kbps', 0):.1f} kbps)"
            label = self.font.render(text, True, (255, 255, 255))
            box = pg.Surface((label.get_width() + 8, label.get_height() + 4))
            box.set_alpha(160)
            box.fill((0, 0, 0))
            self.window.blit(box, (4, 4))
            self.window.blit(label, (8, 6))
        pg.display.flip()
        self.shown += 1

    def close(self) -> None:
        self._pg.display.quit()
