"""The import's running totals, the progress display and the final summary.

``rich`` draws the progress bar and tables when it is installed; without it the same
information is printed as plain text.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from fhir_server.importer.process import ItemResult, Problem

#: Outcomes in the order the summary shows them.
OUTCOMES = ("created", "updated", "unchanged", "found", "deleted", "absent", "read",
            "superseded", "unknown")
#: Outcomes that leave the resource stored as the file has it.
STORED = ("created", "updated", "unchanged")


@dataclass
class Summary:
    """Everything the run did so far."""

    files: int = 0
    #: resources read from the files (stored, failed, superseded and the rest)
    resources: int = 0
    #: resources not stored because of a problem
    failed: int = 0
    #: distinct resources with superseded copies (``duplicates.py``)
    superseded_resources: int = 0
    #: tables ANALYZEd after the import, and the seconds it took
    analyzed: list[str] = field(default_factory=list)
    analyze_seconds: float = 0.0
    #: tables whose indexes were rebuilt after the import, and the seconds it took
    reindexed: list[str] = field(default_factory=list)
    reindex_seconds: float = 0.0
    #: tables the workers wrote to
    tables: set[str] = field(default_factory=set)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    stopped_early: bool = False
    #: why the run stopped before the end (``--strict``, a worker failure, Ctrl-C)
    stop_reason: str = ""

    def stop(self, reason: str) -> None:
        """Record that the run stops early (the first reason wins)."""
        if not self.stopped_early:
            self.stopped_early, self.stop_reason = True, reason

    def add(self, result: ItemResult) -> None:
        """Merge one finished item."""
        self.resources += result.resources
        self.failed += result.failed
        self.tables |= result.tables
        self.counts.update(result.counts)
        self.problems.extend(result.problems)

    @property
    def elapsed(self) -> float:
        """Seconds from start to finish (or now)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def stored(self) -> int:
        """Resources stored as the files have them: created, updated or unchanged."""
        return sum(n for (_, outcome), n in self.counts.items() if outcome in STORED)

    @property
    def rate(self) -> float:
        """Resources stored per second over the whole run."""
        return self.stored / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def progress_rate(self) -> float:
        """Resources read per second (for the progress bar)."""
        return self.resources / self.elapsed if self.elapsed > 0 else 0.0

    def sort_problems(self) -> None:
        """Order problems by file, then line or entry (workers finish out of order)."""
        self.problems.sort(key=_location_key)

    def by_outcome(self) -> Counter[str]:
        """Resources per outcome, all types together."""
        out: Counter[str] = Counter()
        for (_, outcome), n in self.counts.items():
            out[outcome] += n
        return out

    def to_json(self) -> dict[str, Any]:
        """A machine-readable summary (``--summary-json``)."""
        by_type: dict[str, dict[str, int]] = {}
        for (rtype, outcome), n in sorted(self.counts.items()):
            by_type.setdefault(rtype, {})[outcome] = n
        return {
            "files": self.files, "resources": self.stored, "read": self.resources,
            "failed": self.failed, "superseded": self.by_outcome().get("superseded", 0),
            "superseded_resources": self.superseded_resources,
            "seconds": round(self.elapsed, 3), "resources_per_second": round(self.rate, 1),
            "analyzed": self.analyzed, "analyze_seconds": round(self.analyze_seconds, 3),
            "reindexed": self.reindexed, "reindex_seconds": round(self.reindex_seconds, 3),
            "outcomes": dict(self.by_outcome()), "by_type": by_type,
            "problems": [{"location": p.location, "message": p.message, "kind": p.kind}
                         for p in self.problems],
            "stopped_early": self.stopped_early, "stop_reason": self.stop_reason,
        }


class Progress:
    """A progress bar of resources done against the (estimated) total."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._task: Any = None
        self._enabled = enabled
        self._last_plain = 0.0
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        """Show the bar."""
        self.total = total
        if not self._enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
        except ImportError:  # plain lines instead
            return
        self._bar = RichProgress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} resources/s"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(),
            console=Console(file=self._stream), transient=False)
        self._bar.start()
        self._task = self._bar.add_task("import", total=total, rate="-")

    def update(self, advance: int, total_change: int, rate: float) -> None:
        """Count finished resources; ``total_change`` corrects the estimate."""
        self.done += advance
        self.total = max(self.total + total_change, self.done)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total,
                             rate=f"{rate:,.0f}")
        elif self._enabled and time.monotonic() - self._last_plain > 5:
            self._last_plain = time.monotonic()
            print(f"importing: {self.done}/{self.total} resources, {rate:,.0f}/s",
                  file=self._stream, flush=True)

    def stop(self) -> None:
        """Remove the live display."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def render(summary: Summary, stream: TextIO, show_problems: int = 20) -> None:
    """Print the summary: by type and outcome, problems by kind, the first problems."""
    outcomes = [o for o in OUTCOMES if any(k[1] == o for k in summary.counts)]
    types = sorted({t for t, _ in summary.counts})
    kinds: Counter[str] = Counter(p.kind for p in summary.problems)
    examples: dict[str, Problem] = {}
    for problem in summary.problems:
        examples.setdefault(problem.kind, problem)
    headline = _headline(summary)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _plain(summary, stream, outcomes, types, kinds, examples, headline, show_problems)
        return
    console = Console(file=stream, width=max(100, Console(file=stream).width))
    table = Table(title="Resources by type and outcome", title_justify="left")
    table.add_column("type")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    table.add_column("total", justify="right")
    for rtype in types:
        row = [summary.counts.get((rtype, o), 0) for o in outcomes]
        table.add_row(rtype, *[f"{n:,}" for n in row], f"{sum(row):,}")
    totals = [summary.by_outcome().get(o, 0) for o in outcomes]
    table.add_row("all", *[f"{n:,}" for n in totals], f"{sum(totals):,}", style="bold")
    console.print(table)
    if kinds:
        errors = Table(title="Problems by kind", title_justify="left")
        for name in ("kind", "count", "example"):
            errors.add_column(name, justify="right" if name == "count" else "left")
        for kind, n in kinds.most_common():
            errors.add_row(kind, f"{n:,}", _short(str(examples[kind])))
        console.print(errors)
        for problem in summary.problems[:show_problems]:
            console.print(str(problem), markup=False, highlight=False)
        if len(summary.problems) > show_problems:
            console.print(f"... and {len(summary.problems) - show_problems:,} more "
                          "(--errors FILE lists them all)")
    console.print(headline, markup=False, highlight=False, soft_wrap=True)


def _headline(summary: Summary) -> str:
    """What was stored (not what was attempted), what failed, what was left out."""
    outcomes = summary.by_outcome()
    parts = [f"{summary.stored:,} resources stored ("
             + ", ".join(f"{outcomes.get(o, 0):,} {o}" for o in STORED) + ")"]
    if outcomes.get("found"):
        parts.append(f"{outcomes['found']:,} found (conditional creates that matched)")
    parts.append(f"{summary.failed:,} failed")
    text = "; ".join(parts)
    text += (f" from {summary.files:,} files in {summary.elapsed:,.1f} s "
             f"({summary.rate:,.0f} resources/s); {len(summary.problems):,} problems")
    if outcomes.get("superseded"):
        text += (f"\n{outcomes['superseded']:,} copies of "
                 f"{summary.superseded_resources:,} resources that appear more than once "
                 "were left out: each was written once, the last copy in file order")
    if summary.analyzed:
        text += (f"\nANALYZE of {len(summary.analyzed)} tables in "
                 f"{summary.analyze_seconds:,.1f} s")
    if summary.reindexed:
        text += (f"\nREINDEX of {len(summary.reindexed)} tables in "
                 f"{summary.reindex_seconds:,.1f} s")
    if summary.stopped_early:
        text += f"\nstopped early: {summary.stop_reason}"
    return text


_NUMBERED = re.compile(r"^(.*?)(?::(\d+)|: entry\[(\d+)\])$")


def _location_key(problem: Problem) -> tuple[str, int]:
    match = _NUMBERED.match(problem.location)
    if match is None:
        return problem.location, -1
    return match.group(1), int(match.group(2) or match.group(3))


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plain(summary: Summary, stream: TextIO, outcomes: list[str], types: list[str],
           kinds: Counter[str], examples: dict[str, Problem], headline: str,
           show_problems: int) -> None:
    print("type\t" + "\t".join(outcomes) + "\ttotal", file=stream)
    for rtype in types:
        row = [summary.counts.get((rtype, o), 0) for o in outcomes]
        print(rtype + "\t" + "\t".join(map(str, row)) + f"\t{sum(row)}", file=stream)
    for kind, n in kinds.most_common():
        print(f"problems: {kind}: {n} (e.g. {_short(str(examples[kind]))})", file=stream)
    for problem in summary.problems[:show_problems]:
        print(problem, file=stream)
    print(headline, file=stream)
