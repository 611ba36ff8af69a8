"""Progress of a long loop (a training epoch, a photo import): items/s and
time remaining.

On a terminal one line is rewritten in place; otherwise (a log file, a
pipe, CI) a plain line is printed every `interval_seconds`, so a long loop
is never silent. Used from the loop's thread only.
"""
import sys
import time
from typing import Callable, Optional, TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """`label: done/total unit, rate unit/s, time left` (e.g. "photos")."""

    def __init__(self, label: str, total: int, unit: str, stream: TextIO = sys.stdout,
                 is_terminal: Optional[bool] = None, interval_seconds: float = 15.0,
                 clock: Callable[[], float] = time.monotonic, left_in: str = "") -> None:
        self.label, self.total, self.unit, self.left_in = label, total, unit, left_in
        self.stream = stream
        self.is_terminal = stream.isatty() if is_terminal is None else is_terminal
        self.interval = 0.5 if self.is_terminal else interval_seconds
        self.clock = clock
        self.started = clock()
        self.last_report = self.started
        self.done = 0

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        rate_text = f"{rate:.0f}" if rate >= 10 else f"{rate:.1f}"
        return (f"  {self.label}: {self.done}/{self.total} {self.unit}, {rate_text} "
                f"{self.unit}/s, {format_duration(remaining)} left{self.left_in}")

    def advance(self, count: int) -> None:
        """Records `count` more done; prints when the interval has passed."""
        self.done += count
        now = self.clock()
        if now - self.last_report < self.interval or self.done >= self.total:
            return
        self.last_report = now
        if self.is_terminal:
            self.stream.write("\r" + self.line() + "\033[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Clears the terminal line (the loop's summary line follows)."""
        if self.is_terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()


class EpochProgress(Progress):
    """Progress of training epoch `epoch` of `epochs` over `total_images`."""

    def __init__(self, epoch: int, epochs: int, total_images: int,
                 stream: TextIO = sys.stdout, is_terminal: Optional[bool] = None,
                 interval_seconds: float = 15.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(f"epoch {epoch}/{epochs}", total_images, "images", stream, is_terminal,
                         interval_seconds, clock, left_in=" in this epoch")
