"""Progress of a sweep: one bar per process over its jobs, each on its own terminal line.

Under ``accelerate launch`` every process of a machine writes to the same terminal. The
grid bar of local process ``i`` sits on line ``i``; the analysis bar each job shows
(``hf_metaopt.analysis.progress``) sits below all grid bars, on line ``n + i``.
"""

from __future__ import annotations

import io

from tqdm.auto import tqdm

__all__ = ["GridProgress"]


class GridProgress:
    """``with GridProgress(total, index, count, enabled) as bar: ...; bar.job(name); bar.done()``."""

    def __init__(self, total: int, index: int = 0, count: int = 1, enabled: bool = True):
        self.total, self.index, self.count, self.enabled = total, index, count, enabled
        self.bar = None
        self._spacers: list = []

    def __enter__(self) -> "GridProgress":
        if not self.enabled:
            return self
        self.bar = tqdm(total=self.total, desc=f"sweep (process {self.index})", unit="job", position=self.index, dynamic_ncols=True)
        # tqdm puts a bar given no position (the analysis bar) on the first line no bar of this
        # process holds; bars that write nowhere hold the lines of the other processes' bars.
        self._spacers = [
            tqdm(total=0, position=line, file=io.StringIO(), leave=False)
            for line in range(self.count + self.index) if line != self.index
        ]
        return self

    def __exit__(self, *exc) -> None:
        for spacer in self._spacers:
            spacer.close()
        self._spacers = []
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def job(self, name: str) -> None:
        """Show which job runs now."""
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=True)

    def grow(self) -> None:
        """Count one more job: one of another process's share that this process runs."""
        if self.bar is not None:
            self.bar.total += 1
            self.bar.refresh()

    def done(self) -> None:
        """Count one job as finished."""
        if self.bar is not None:
            self.bar.update(1)
