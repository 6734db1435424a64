"""Live progress of a stage that runs in a child process: its tqdm bars, read from its output as it streams.

The main job (worldmodel.pipeline) sends every byte a stage prints to the stage's ``stage.log`` and feeds the same
text to a :class:`ProgressMirror`, which finds the child's tqdm bars (``desc: 45%|####  | 45/100 [00:30<00:37,
1.5it/s]``, or ``desc: 45it [00:03, 12it/s]`` without a total) and shows one line per stage:

* on a terminal, a single line rewritten in place (``\\r``), cleared when the stage ends;
* anywhere else (CI logs, a file), plain log lines: the first state of each bar, then at most one every
  ``every_s`` seconds, and the bar's last state when it reaches 100% - never thousands of carriage returns.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

logger = logging.getLogger("worldmodel.pipeline")

_WITH_TOTAL = re.compile(
    r"^(?:(?P<desc>.*?): )?\s*(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>[^\s/]+)/(?P<total>\S+)\s+\[(?P<time>[^\]]*)\]"
)
_NO_TOTAL = re.compile(r"^(?:(?P<desc>.*?): )?(?P<n>\d[\d.]*[kMG]?)(?P<unit>[A-Za-z/]+) \[(?P<time>[^\]]*)\]\s*$")
_BAR_WIDTH = 20


@dataclass(frozen=True)
class Bar:
    """One state of a child's tqdm bar."""

    desc: str
    n: str
    total: str | None  # None: a bar without a total (tqdm shows a count only)
    pct: int | None
    time: str  # tqdm's "elapsed<remaining, rate" text

    def text(self, with_bar: bool) -> str:
        """``desc 45% |#########           | 45/100 [00:30<00:37, 1.5it/s]`` (the bar drawn only when asked)."""
        head = f"{self.desc} " if self.desc else ""
        if self.pct is None:
            return f"{head}{self.n} [{self.time}]"
        drawn = ""
        if with_bar:
            filled = round(_BAR_WIDTH * min(self.pct, 100) / 100)
            drawn = "|" + "#" * filled + " " * (_BAR_WIDTH - filled) + "| "
        return f"{head}{self.pct:3d}% {drawn}{self.n}/{self.total} [{self.time}]"


def parse_bar(fragment: str) -> Bar | None:
    """The tqdm bar state in one fragment of a child's output (text between two ``\\r``/``\\n``), or None."""
    text = fragment.strip()
    match = _WITH_TOTAL.match(text)
    if match:
        pct = int(match["pct"])
        return Bar((match["desc"] or "").strip(), match["n"], match["total"], pct, match["time"])
    match = _NO_TOTAL.match(text)
    if match:
        return Bar((match["desc"] or "").strip(), match["n"] + match["unit"], None, None, match["time"])
    return None


class ProgressMirror:
    """Shows a stage's progress from its streamed output: one live line on a terminal, plain lines elsewhere."""

    def __init__(
        self,
        stage: str,
        stream: TextIO,
        live: bool,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.stream = stream
        self.live = live
        self.every_s = every_s
        self.clock = clock
        self._pending = ""  # text after the last \r or \n: a fragment still being written
        self._shown = False  # a live line is on the terminal
        self._last_emit = -float("inf")
        self._last_live = -float("inf")
        self._emitted: set[tuple[str, str]] = set()  # (desc, kind) already logged: kind "first" or "done"

    def feed(self, text: str) -> None:
        """Take the next piece of the child's output (any split: fragments are joined across calls)."""
        parts = re.split(r"[\r\n]", self._pending + text)
        self._pending = parts.pop()  # tqdm writes "\r<bar>": the newest state is this unterminated fragment
        if self.live:
            latest = parse_bar(self._pending) or next(filter(None, map(parse_bar, reversed(parts))), None)
            if latest is not None:
                self._show(latest)
            return
        for bar in filter(None, map(parse_bar, parts)):  # whole fragments only: a pending one may be half-written
            self._log(bar)

    def close(self) -> None:
        """The stage ended: log the last fragment's bar (plain lines) or clear the live line (the caller then logs
        the stage's time)."""
        last, self._pending = parse_bar(self._pending), ""
        if last is not None and not self.live:
            self._log(last)
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def _show(self, bar: Bar) -> None:
        """Rewrite the terminal line (at most ten times a second, and always at 100%)."""
        now = self.clock()
        if now - self._last_live < 0.1 and bar.pct != 100:
            return
        self._last_live = now
        width = max(shutil.get_terminal_size((100, 20)).columns - 1, 20)
        line = f"[pipeline] {self.stage}: {bar.text(with_bar=True)}"
        self.stream.write("\r\033[K" + line[:width])
        self.stream.flush()
        self._shown = True

    def _log(self, bar: Bar) -> None:
        """A plain line for a new bar, for a bar at 100% (once), or when ``every_s`` has passed since the last."""
        now = self.clock()
        kind = "first" if (bar.desc, "first") not in self._emitted else "done" if bar.pct == 100 else "update"
        if kind == "update" and now - self._last_emit < self.every_s:
            return
        if kind == "done" and (bar.desc, "done") in self._emitted:
            return
        self._emitted.add((bar.desc, kind))
        if bar.pct == 100:
            self._emitted.add((bar.desc, "done"))
        self._last_emit = now
        logger.info("[pipeline] %s: %s", self.stage, bar.text(with_bar=False))
