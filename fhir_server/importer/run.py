"""``fhir-server import``: orchestration of worker processes, progress and summary.

The parent finds the files, checks the database's migrations, starts the workers and
feeds them work items phase by phase (Synthea's hospital, then practitioner Bundles
first; each phase ends when its items are done). It shows the progress and prints the summary.
Transaction files that failed in a way that may pass later (a lock conflict or
deadlock, a conditional reference to a resource not stored yet, a database outage) are
tried once more at the end; only their last outcome is reported.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import orjson

from fhir_server.importer import files as files_mod
from fhir_server.importer.duplicates import Duplicates, scan
from fhir_server.importer.files import FileItem, InputFile, WorkItem
from fhir_server.importer.process import ItemResult, Problem
from fhir_server.importer.report import Progress, Summary, render
from fhir_server.importer.worker import WorkerConfig
from fhir_server.importer.worker import main as worker_main
from fhir_server.paths import data_dir
from fhir_server.settings import Settings


@dataclass(frozen=True)
class ImportOptions:
    """The command line options of ``fhir-server import``."""

    paths: list[str]
    workers: int | None = None
    concurrency: int = 4
    strict: bool = False
    progress: bool = True
    chunk_lines: int = files_mod.CHUNK_LINES
    errors_file: str | None = None
    summary_json: str | None = None
    show_problems: int = 20
    #: rebuild the indexes of the tables the import grew (``storage/repack.py``)
    reindex: bool = True


def run_import(settings: Settings, options: ImportOptions, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """Import ``options.paths`` into ``settings.database_url``; returns the exit status.

    0 on success (problems reported and skipped); 1 when ``--strict`` and any problem,
    when nothing could be imported, when a worker failed or the run was interrupted,
    when no input was found or the database's migrations are not up to date.
    """
    out, err = out or sys.stdout, err or sys.stderr
    found, problems = files_mod.discover(options.paths)
    for path, message in problems:
        print(f"fhir-server import: {path}: {message}", file=err)
    if not found:
        print("fhir-server import: nothing to import (no .json, .ndjson or .ndjson.gz "
              "files)", file=err)
        return 1
    from fhir_server.storage import admin

    state = admin.start_check(settings.database_url, data_dir("migrations"))
    # As for serve: a newer schema that declares this release compatible is fine.
    if state not in ("up to date", admin.AHEAD_COMPATIBLE):
        print(f"fhir-server import: refusing to import: the database's migrations are "
              f"{state}; run 'fhir-server migrate' first", file=err)
        return 1
    before = _row_estimates(settings.database_url) if options.reindex else None
    summary = _Run(settings, options, found, err).execute()
    _analyze(settings.database_url, summary, err)
    if before is not None and not summary.stopped_early:
        _reindex(settings.database_url, before, summary, err)
    summary.problems[:0] = [Problem(path, message, "not found") for path, message in problems]
    summary.sort_problems()
    render(summary, out, options.show_problems)
    if options.errors_file:
        Path(options.errors_file).write_text("".join(f"{p}\n" for p in summary.problems),
                                             encoding="utf-8")
    if options.summary_json:
        Path(options.summary_json).write_bytes(
            orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    succeeded = sum(n for (_, o), n in summary.counts.items() if o != "superseded")
    if summary.problems and (options.strict or not succeeded):
        return 1
    # Not a bad input but a broken run: what was in flight is unknown.
    if any(p.kind in ("worker failure", "interrupted") for p in summary.problems):
        return 1
    return 0


def _analyze(database_url: str, summary: Summary, err: TextIO) -> None:
    """ANALYZE the tables the import wrote to: the planner needs their statistics at
    once (autovacuum may be off or come much later). A failure is only a warning."""
    import psycopg
    from psycopg import sql

    tables = sorted(t for t in summary.tables if t in _ANALYZABLE or t.startswith("idx_"))
    if not tables:
        return
    started = time.monotonic()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for table in tables:
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    except psycopg.Error as exc:
        print(f"fhir-server import: warning: ANALYZE failed: {exc}".rstrip(), file=err)
        return
    summary.analyzed = tables
    summary.analyze_seconds = time.monotonic() - started


_ANALYZABLE = frozenset({"resource", "resource_history"})


def _row_estimates(database_url: str) -> dict[str, int] | None:
    import psycopg

    from fhir_server.storage import repack

    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            return repack.row_estimates(conn)
    except psycopg.Error:
        return None  # the import itself reports an unreachable database


def _reindex(database_url: str, before: dict[str, int], summary: Summary,
             err: TextIO) -> None:
    """Rebuild the indexes of the tables the import grew by a quarter or more (after
    ANALYZE, whose row counts it compares): a bulk load leaves them ~70 % full. A
    failure is only a warning: the old indexes stay in use."""
    import psycopg

    from fhir_server.storage import repack

    started = time.monotonic()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            tables = repack.grown(before, repack.row_estimates(conn))
            summary.reindexed = repack.reindex(conn, tables)
    except psycopg.Error as exc:
        print(f"fhir-server import: warning: REINDEX failed: {exc}".rstrip(), file=err)
    summary.reindex_seconds = time.monotonic() - started


@dataclass
class _Run:
    settings: Settings
    options: ImportOptions
    inputs: list[InputFile]
    err: TextIO
    summary: Summary = field(default_factory=Summary)
    #: item id -> (item if it may be retried, its estimate)
    sent: dict[int, tuple[FileItem | None, int]] = field(default_factory=dict)
    retries: list[FileItem] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Condition = field(default_factory=threading.Condition)
    estimates: dict[Path, int] = field(default_factory=dict)
    #: items sent (retries included) and results received, for the end of a phase
    sent_count: int = 0
    finished: int = 0
    duplicates: Duplicates = field(default_factory=Duplicates)

    def execute(self) -> Summary:
        workers = self.options.workers or files_mod.cpu_count()
        concurrency = max(1, self.options.concurrency)
        mp = multiprocessing.get_context("spawn")
        tasks: Any = mp.Queue(maxsize=workers * concurrency * 2)
        # Items left unread after a failure must not keep this process from exiting.
        tasks.cancel_join_thread()
        results: Any = mp.Queue()
        base_url = self.settings.fhir_base_url.rstrip("/")
        procs = [mp.Process(target=worker_main, name=f"fhir-import-{i}", daemon=True,
                            args=(WorkerConfig(i, self.settings, concurrency, base_url),
                                  tasks, results)) for i in range(workers)]
        for proc in procs:
            proc.start()
        # While the workers load their definitions: the copies a later one supersedes.
        self.duplicates = scan(self.inputs)
        self.summary.superseded_resources = self.duplicates.resources
        feeder = threading.Thread(target=self._feed, args=(tasks, workers * concurrency),
                                  name="import-feeder", daemon=True)
        feeder.start()
        # Estimated while the workers load their definitions and take the first items.
        total = sum(self._estimate(f) for f in self.inputs)
        self.summary.files = len(self.inputs)
        progress = Progress(self.options.progress, self.err)
        progress.start(total)
        try:
            self._collect(results, procs, progress)
        except KeyboardInterrupt:
            self.stop.set()
            self.summary.stop("interrupted")
            self.summary.problems.append(Problem("import", "interrupted", "interrupted"))
            for proc in procs:
                proc.terminate()
        finally:
            progress.stop()
            self.stop.set()
            with self.done:
                self.done.notify_all()
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()
        self.summary.finished = time.monotonic()
        return self.summary

    # -- parent threads -------------------------------------------------------------

    def _estimate(self, input_file: InputFile) -> int:
        """A file's estimated resources, read once (by whichever thread comes first)."""
        found = self.estimates.get(input_file.path)
        if found is None:
            found = self.estimates[input_file.path] = files_mod.estimate(input_file)
        return found

    def _put(self, tasks: Any, item: WorkItem | None) -> bool:
        """Queue an item unless the run is stopping (checked while the queue is full)."""
        while not self.stop.is_set() or item is None:
            try:
                tasks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _send(self, tasks: Any, item: WorkItem) -> bool:
        self.sent[item.item_id] = (item if isinstance(item, FileItem) else None,
                                   item.estimate)
        with self.done:
            self.sent_count += 1
        if self._put(tasks, item):
            return True
        with self.done:
            self.sent_count -= 1  # never queued
        return False

    def _wait_until_done(self) -> None:
        with self.done:
            self.done.wait_for(lambda: self.finished >= self.sent_count or self.stop.is_set())

    def _feed(self, tasks: Any, lanes: int) -> None:
        """Send the items of each phase, wait for them, then retries, then stop markers."""
        next_id = 0
        try:
            for phase in range(files_mod.LAST_PHASE + 1):
                for input_file in (f for f in self.inputs if f.phase == phase):
                    if self.stop.is_set():
                        break
                    skip = self.duplicates.of(input_file.path)
                    if input_file.kind == "json":
                        item: WorkItem = FileItem(next_id, str(input_file.path),
                                                  self._estimate(input_file),
                                                  superseded=skip)
                        next_id += 1
                        self._send(tasks, item)
                        continue
                    try:
                        for chunk in files_mod.ndjson_chunks(input_file, next_id,
                                                             self.options.chunk_lines):
                            next_id = chunk.item_id + 1
                            if skip:
                                chunk = replace(chunk, superseded=frozenset(
                                    n for n, _ in chunk.lines if n in skip))
                            if not self._send(tasks, chunk):
                                break
                    except (OSError, EOFError) as exc:
                        self._problem(Problem(str(input_file.path),
                                              f"cannot read: {exc}", "unreadable file"))
                self._wait_until_done()
            if self.retries and not self.stop.is_set():
                retries, self.retries = self.retries, []
                for retry in retries:
                    self._send(tasks, replace(retry, retry=True))
                self._wait_until_done()
        finally:
            for _ in range(lanes):
                self._put(tasks, None)

    def _problem(self, problem: Problem) -> None:
        with self.done:
            self.summary.problems.append(problem)
            if self.options.strict:
                self.stop.set()
                self.summary.stop("--strict, at the first problem")

    def _collect(self, results: Any, procs: list[Any], progress: Progress) -> None:
        """Receive results until every worker has exited."""
        exited: set[int] = set()
        suspects: set[int] = set()
        while len(exited) < len(procs):
            try:
                message = results.get(timeout=0.5)
            except queue.Empty:
                # A worker found dead twice in a row, with the queue drained in between,
                # did not send its "exit" (its last messages arrive after it has ended).
                for index in suspects - exited:
                    exited.add(index)
                    self._fatal(f"worker {index} ended unexpectedly "
                                f"(exit code {procs[index].exitcode})")
                suspects = {i for i, p in enumerate(procs)
                            if i not in exited and not p.is_alive()}
                continue
            kind = message[0]
            if kind == "result":
                self._result(message[1], progress)
            elif kind == "fatal":
                self._fatal(f"worker {message[1]} failed: {message[2]}")
            elif kind == "exit":
                exited.add(message[1])

    def _fatal(self, text: str) -> None:
        with self.done:
            self.summary.problems.append(Problem("import", text, "worker failure"))
            self.summary.stop("a worker failed")
            self.stop.set()
            self.done.notify_all()

    def _result(self, result: ItemResult, progress: Progress) -> None:
        item, estimate = self.sent.get(result.item_id, (None, 0))
        with self.done:
            if result.retryable and item is not None and not item.retry:
                self.retries.append(item)  # reported after its second try
            else:
                self.summary.add(result)
                progress.update(result.resources, result.resources - estimate,
                                self.summary.progress_rate)
                if result.problems and self.options.strict:
                    self.stop.set()
                    self.summary.stop("--strict, at the first problem")
            self.finished += 1
            self.done.notify_all()


