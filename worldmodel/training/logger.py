"""Scalar logger writing a wide CSV and TensorBoard events; a no-op on non-zero ranks."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def process_rank() -> int:
    """Rank of this process from the usual launcher variables (0 when not distributed)."""
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


class ScalarLogger:
    """Log dicts of scalars per step to `<dir>/metrics.csv` and TensorBoard; only rank 0 writes."""

    def __init__(
        self,
        log_dir: str | Path,
        enabled: bool | None = None,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        """``resume_step``: the step of the checkpoint a trainer (re)starts from; rows a previous attempt logged
        after it are dropped (every row for 0, a start without checkpoint). None keeps the CSV as it is."""
        self.log_dir = Path(log_dir)
        self.enabled = process_rank() == 0 if enabled is None else enabled
        self.csv_path = self.log_dir / "metrics.csv"
        self._columns: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._tb = None
        if not self.enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self._columns = list(reader.fieldnames or [])
                rows = list(reader)
            if resume_step is not None:  # drop rows logged after the checkpoint we resume from (all rows for 0)
                rows = [r for r in rows if 0 < resume_step and int(float(r["step"])) <= resume_step]
                self._rewrite(rows)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                purge = None if resume_step is None else resume_step + 1 if resume_step > 0 else 0
                self._tb = SummaryWriter(str(self.log_dir / "tb"), purge_step=purge)
            except ImportError:  # tensorboard not installed: CSV only
                self._tb = None

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the whole CSV (used when columns change or on resume)."""
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", *[c for c in self._columns if c != "step"]])
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in w.fieldnames})
        os.replace(tmp, self.csv_path)
        self._columns = ["step", *[c for c in self._columns if c != "step"]]

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record `scalars` at `step` (new keys extend the CSV header)."""
        if not self.enabled:
            return
        vals = {k: float(v) for k, v in scalars.items()}
        new = [k for k in vals if k not in self._columns]
        if new or not self.csv_path.exists():
            rows = []
            if self.csv_path.exists():
                with self.csv_path.open(newline="") as f:
                    rows = list(csv.DictReader(f))
            self._columns = ["step", *[c for c in self._columns if c != "step"], *new]
            self._rewrite(rows)
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._columns)
            w.writerow({"step": step, **vals})
        if self._tb is not None:
            for k, v in vals.items():
                self._tb.add_scalar(k, v, step)

    def flush(self) -> None:
        """Flush TensorBoard events to disk."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close writers."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_csv_log(path: str | Path) -> list[dict[str, float]]:
    """Read a metrics.csv back as a list of {column: float} rows (empty cells skipped)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
