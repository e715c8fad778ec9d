"""A small pure-Python progress bar for long work (training, evaluation, benchmarks)."""

import contextlib
import math
import sys
import time
from collections import deque


def _fmt_seconds(s):
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


class ProgressBar:
    """A small progress bar: iteration/total, images/s, recent loss, ETA.

    On a terminal it redraws one line in place (``\\r``); otherwise it prints a line every
    ``every`` iterations and at the end.

    Args:
        total: the last iteration.
        start: the iteration it starts from (a resumed run).
        stream: where to draw (default sys.stderr).
        every: iterations between lines when the stream is not a terminal.
    Example:
        >>> import io
        >>> bar = ProgressBar(10, stream=io.StringIO(), every=5)
        >>> for i in range(1, 11): bar.update(i, 64, 0.5)
        >>> bar.stream.getvalue().count("\\n")
        2
    """

    def __init__(self, total, start=0, stream=None, every=100, width=20):
        self.total, self.start = total, start
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, int(every))
        self.width = width
        self.t0 = time.perf_counter()
        self.excluded = 0.0
        self.images = 0
        self.iteration = start
        self.losses = deque(maxlen=50)
        self._shown = 0  # length of the line on screen (terminal only)
        self._last_draw = 0.0
        self._pause_depth = 0

    def elapsed(self):
        """Training seconds so far (paused time excluded)."""
        return max(time.perf_counter() - self.t0 - self.excluded, 1e-9)

    def line(self):
        """The text of the bar now."""
        it, total = self.iteration, max(self.total, 1)
        frac = min(it / total, 1.0)
        fill = int(self.width * frac)
        t = self.elapsed()
        rate = self.images / t
        done = it - self.start
        eta = (self.total - it) * t / done if done else float("nan")
        loss = f"{sum(self.losses) / len(self.losses):.4f}" if self.losses else "-"
        return (f"{it}/{self.total} [{'#' * fill}{'.' * (self.width - fill)}] {100 * frac:3.0f}% "
                f"{rate:,.0f} img/s loss {loss} ETA {_fmt_seconds(eta)}")

    def update(self, iteration, images, loss):
        """Record one iteration (its batch size and loss) and draw if due."""
        self.iteration = iteration
        self.images += images
        if loss is not None and math.isfinite(loss):
            self.losses.append(loss)
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or iteration >= self.total:
                self._last_draw = now
                self.redraw()
        elif iteration % self.every == 0 or iteration >= self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def redraw(self):
        """Draw the bar in place (terminal only)."""
        if not self.tty:
            return
        text = self.line()
        self.stream.write("\r" + text + " " * max(0, self._shown - len(text)))
        self.stream.flush()
        self._shown = len(text)

    def clear(self):
        """Erase the bar so that another line can be printed (terminal only)."""
        if self.tty and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    @contextlib.contextmanager
    def paused(self):
        """Erase the bar, run the block (not counted as training time), draw it again."""
        if self._pause_depth:
            yield
            return
        t = time.perf_counter()
        self._pause_depth += 1
        self.clear()
        try:
            yield
        finally:
            self._pause_depth -= 1
            self.excluded += time.perf_counter() - t
            if self.iteration > self.start:
                self.redraw()

    def close(self):
        """End the bar's line (terminal only)."""
        if self.tty and self._shown:
            self.redraw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0
