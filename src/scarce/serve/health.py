"""What ``GET /v1/health`` checks: the store answers, it has not failed a write lately, the
SQLite file system has room, and the last integrity check of the file found nothing."""

from __future__ import annotations

import logging
import threading
import time

from scarce.serve.db import Database

#: a failed write makes the service unhealthy for this many seconds
WRITE_ERROR_WINDOW = 60.0
_LOG = logging.getLogger("scarce.serve")


class HealthMonitor:
    """Health checks of one database.

    Parameters
    ----------
    db:
        the database.
    min_free_bytes:
        SQLite: unhealthy below this much free space on the database's file system.
    integrity_interval:
        seconds between integrity checks (:meth:`maybe_check_integrity`); 0: only the first.
    """

    def __init__(self, db: Database, min_free_bytes: float, integrity_interval: float) -> None:
        self.db = db
        self.min_free_bytes = float(min_free_bytes)
        self.integrity_interval = float(integrity_interval)
        self.integrity: str | None = None  # the last check's finding
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def check_integrity(self) -> str | None:
        """Run the integrity check now; returns (and remembers) what it found, None if sound."""
        with self._lock:
            try:
                found = self.db.integrity_problem()
            except Exception as exc:  # noqa: BLE001 - a file too broken to check is corrupt
                found = f"{type(exc).__name__}: {exc}"
            self.integrity, self._checked_at = found, time.monotonic()
        if found:
            _LOG.error("integrity check of the event store failed: %s", found)
        return found

    def maybe_check_integrity(self) -> None:
        """Run the integrity check when ``integrity_interval`` seconds have passed."""
        due = self._checked_at is None or (
            self.integrity_interval > 0
            and time.monotonic() - self._checked_at >= self.integrity_interval
        )
        if due:
            self.check_integrity()

    def problems(self) -> list[tuple[str, str]]:
        """``(field, message)`` of every failed check; empty when healthy."""
        out = []
        try:
            self.db.query("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any store failure means "not ready"
            out.append(("store", f"unavailable: {exc}"))
        last = self.db.last_write_error
        if last is not None and time.time() - last[0] < WRITE_ERROR_WINDOW:
            out.append(("store", f"a write failed {time.time() - last[0]:.0f} s ago: {last[1]}"))
        free = self.db.free_bytes()
        if free is not None and free < self.min_free_bytes:
            out.append(
                ("disk", f"{free / 2**20:.1f} MiB free, below {self.min_free_bytes / 2**20:g} MiB")
            )
        if self.integrity:
            out.append(("integrity", self.integrity))
        return out
