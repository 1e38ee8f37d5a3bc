"""The JSON-lines log that makes an evaluation resumable.

The first line holds the run's configuration; every further line is one
finished unit of work (the clean pass or one attack) on one batch of examples,
with its per-example results. Each line is flushed and synced to disk before
the next unit starts, so an interrupted run loses at most the unit in flight,
and a resumed run reads the completed units back instead of recomputing them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

JOURNAL_NAME = "evaluation.jsonl"
FORMAT = "robustlearn.evaluation-journal/1"


def encode_bits(values) -> str:
    """Booleans as a compact string of ``0`` and ``1``."""
    return "".join("1" if v else "0" for v in values)


def decode_bits(text: str) -> list[bool]:
    """Inverse of :func:`encode_bits`."""
    return [c == "1" for c in text]


def _differences(old, new, prefix=""):
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


class EvaluationJournal:
    """Append-only log of an evaluation in ``out_dir/evaluation.jsonl``.

    Parameters
    ----------
    out_dir : str or Path
        Folder of the log (created if missing).
    config : dict
        JSON-serialisable description of the run; a resumed run must match it.
    resume : bool
        Continue an existing log (``True``) or refuse to touch one (``False``).

    Attributes
    ----------
    path : Path
        The log file.
    records : dict
        Completed units, keyed by ``(unit, batch)``.
    """

    def __init__(self, out_dir, config: dict, resume: bool):
        self.path = Path(out_dir) / JOURNAL_NAME
        self.config = json.loads(json.dumps(config))
        self.records = {}
        self._file = None
        if self.path.exists():
            if not resume:
                raise ValueError(
                    f"{self.path} already holds an evaluation; pass resume=True (--resume) to "
                    "continue it, or choose another output folder"
                )
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_line({"format": FORMAT, "config": self.config}, mode="w")

    def _read(self):
        with open(self.path, "rb") as handle:
            # every line is written with its newline, so the text after the last newline is
            # a line cut short by the interruption (empty when none was)
            *complete, _ = handle.read().split(b"\n")
        try:
            header = json.loads(complete[0]) if complete else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a robustlearn evaluation log ({FORMAT})")
        changed = _differences(header.get("config"), self.config)
        if changed:
            raise ValueError(
                f"cannot resume {self.path}: the configuration differs from the logged run in "
                f"{', '.join(changed)}; use the same settings or another output folder"
            )
        good_bytes = len(complete[0]) + 1
        for line in complete[1:]:
            try:
                record = json.loads(line)
                key = (record["unit"], record["batch"])
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                break  # damaged from here on: those units are redone
            self.records[key] = record
            good_bytes += len(line) + 1
        with open(self.path, "r+b") as handle:
            handle.truncate(good_bytes)

    def _write_line(self, obj, mode="a"):
        with open(self.path, mode, encoding="utf-8") as handle:
            handle.write(json.dumps(obj, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def get(self, unit: str, batch: int):
        """The logged record of ``unit`` on ``batch``, or None if it has not run."""
        return self.records.get((unit, batch))

    def append(self, record: dict) -> None:
        """Log one completed unit (a dict with at least ``unit`` and ``batch``)."""
        self._write_line(record)
        self.records[(record["unit"], record["batch"])] = record
