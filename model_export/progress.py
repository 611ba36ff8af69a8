"""Progress inside a training epoch: images/s and time remaining.

On a terminal one line is rewritten in place; otherwise (a log file, a
pipe, CI) a plain line is printed every `interval_seconds`, so a long epoch
is never silent. Used from the training loop's thread only.
"""
import sys
import time
from typing import Callable, Optional, TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class EpochProgress:
    def __init__(self, epoch: int, epochs: int, total_images: int,
                 stream: TextIO = sys.stdout, is_terminal: Optional[bool] = None,
                 interval_seconds: float = 15.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.epoch, self.epochs, self.total = epoch, epochs, total_images
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
        return (f"  epoch {self.epoch}/{self.epochs}: {self.done}/{self.total} images, "
                f"{rate:.0f} images/s, {format_duration(remaining)} left in this epoch")

    def advance(self, images: int) -> None:
        """Records `images` more trained; prints when the interval has passed."""
        self.done += images
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
        """Clears the terminal line (the epoch's summary line follows)."""
        if self.is_terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()
