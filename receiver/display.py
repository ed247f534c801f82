"""`vrecv --display`: a window (SDL2 through pygame) showing the reconstructed video.

A small overlay in the corner gives media kbps, fps, latency and frames
lost. pygame is imported only when a window is asked for, so the rest of
vsa never needs it.

The window draws on a thread of its own (`DisplayThread`), fed the newest
frame through a one-slot mailbox: drawing and `flip` take milliseconds that
on the event loop delayed every message and every frame behind them, and a
window that falls behind skips to the newest frame rather than queueing.
(On macOS SDL must draw on the main thread: there it draws inline.)
"""

from __future__ import annotations

import logging
import os
import sys
import threading

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


log = logging.getLogger("vsa.display")


class Display:
    def __init__(self, title: str = "vrecv", scale: float = 1.0) -> None:
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
        self.scale = scale
        """Window size over frame size (`vrecv --window-scale`)."""
        self.window = None
        self.font = pygame.font.Font(None, 18)
        self.closed = False
        self.shown = 0

    def open(self, height: int, width: int) -> None:
        """Open (or resize) the window for frames of ``height`` x ``width``, before the first one comes."""
        pg = self._pg
        size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        if self.window is None or self.window.get_size() != size:
            try:
                self.window = pg.display.set_mode(size)
            except pg.error as exc:
                raise DisplayError(f"cannot open a window: {exc}") from None
            pg.display.set_caption(self.title)
            self.window.fill((0, 0, 0))
            pg.display.flip()

    def show(self, frame: torch.Tensor, overlay: dict) -> None:
        """Draw one (3, H, W) float frame in [0, 1] with the overlay; keeps the window responsive."""
        pg = self._pg
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key in (pg.K_ESCAPE, pg.K_q)):
                self.closed = True
        rgb = frame.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        h, w = rgb.shape[:2]
        self.open(h, w)
        size = self.window.get_size()
        surface = pg.image.frombuffer(np.ascontiguousarray(rgb).tobytes(), (w, h), "RGB")
        if size != (w, h):
            surface = pg.transform.smoothscale(surface, size)
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


class DisplayThread:
    """A `Display` drawing on a thread of its own: `show` hands it the newest frame and returns at once.

    One slot, not a queue: a frame not yet drawn when the next arrives is
    replaced (and counted in ``skipped``), so a slow window never delays
    what it shows.
    """

    def __init__(self, title: str = "vrecv", scale: float = 1.0) -> None:
        check_display_available()
        self._title, self._scale = title, scale
        self._slot: tuple[torch.Tensor, dict] | None = None
        self._open_size: tuple[int, int] | None = None
        self._opened_size = threading.Event()
        self._lock = threading.Condition()
        self._stop = False
        self.skipped = 0
        self.error: BaseException | None = None
        self.closed = False
        """The viewer closed the window (or it failed: see ``error``)."""
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vsa-display", daemon=True)
        self._thread.start()
        self._opened.wait(30)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            display = Display(self._title, self._scale)  # SDL's calls all come from this thread
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
            self.error = exc
            self._opened.set()
            return
        self._opened.set()
        try:
            while True:
                with self._lock:
                    while self._slot is None and self._open_size is None and not self._stop:
                        self._lock.wait(0.1)
                    if self._stop:
                        return
                    size, self._open_size = self._open_size, None
                    item, self._slot = self._slot, None
                if size is not None:
                    display.open(*size)
                    self._opened_size.set()
                if item is None:
                    continue
                display.show(*item)
                if display.closed:
                    self.closed = True
        except Exception as exc:  # noqa: BLE001 - a broken window ends the display, not the stream
            self.error, self.closed = exc, True
            log.error("the window failed: %s", exc)
        finally:
            display.close()

    def prepare(self, height: int, width: int, timeout: float = 10.0) -> None:
        """Open the window for frames of this size and wait until it is (a stream's start, before its frames)."""
        with self._lock:
            self._opened_size.clear()
            self._open_size = (height, width)
            self._lock.notify()
        self._opened_size.wait(timeout)

    def show(self, frame: torch.Tensor, overlay: dict) -> None:
        """Hand the window the newest frame (never waits for it to be drawn)."""
        with self._lock:
            if self._slot is not None:
                self.skipped += 1
            self._slot = (frame, overlay)
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(5)


def open_display(title: str = "vrecv", scale: float = 1.0) -> Display | DisplayThread:
    """The window `vrecv --display` draws in: on a thread of its own, except on macOS (SDL wants the main one)."""
    if sys.platform == "darwin":
        return Display(title, scale)
    return DisplayThread(title, scale)
