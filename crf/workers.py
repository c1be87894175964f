"""Run each input file's read-and-check in a forked worker process, watched by the parent.

The workbook library (python-calamine, Rust) aborts the whole process when an allocation fails
(a hostile cell reference can ask for hundreds of GB) and a Rust panic is not an `Exception`. So
files are checked in forked workers with an address-space limit and a time limit per file; the
parent hands each worker one file at a time, reads its pickled outcome from a pipe and watches
every worker itself (no pool's blocking map that waits forever for a result a dead worker will
never send). A worker that dies, aborts or overruns becomes one finding naming the file it was
on; a new worker takes the next file, and the other files are still checked.

A worker keeps the study-level caches it built for its first file (3 s of layout for the shipped
study), so the caches must be pure functions of the study and the file (crf/readers/xlsx/).
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_HEADER = struct.Struct("!Q")


@dataclass(frozen=True)
class Failure:
    """Why a child produced no outcome: 'crashed' (died, aborted, out of memory) or 'timeout'."""

    kind: str
    detail: str  # for the finding: "the reader was stopped by signal 6 (SIGABRT): memory allocation of ... failed"


def can_isolate() -> bool:
    return hasattr(os, "fork") and os.name == "posix"


def _address_space() -> int:
    """This process's mapped address space now (bytes), which a forked child starts with."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class _Worker:
    pid: int
    tasks: int  # fd the parent writes task numbers to
    results: int  # fd the parent reads results from
    stderr: IO[bytes]
    current: Optional[int] = None  # task being worked on
    started: float = 0.0
    data: bytearray = field(default_factory=bytearray)
    done: int = 0


def _limit_memory(budget: int) -> None:
    if budget <= 0:
        return
    try:
        import resource

        limit = _address_space() + budget
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # no limit on this platform: the time limit still holds
        pass


def _read_exactly(fd: int, size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = os.read(fd, size - len(out))
        if not chunk:
            return b""
        out += chunk
    return out


def _worker_main(work: Callable[[T], R], tasks: Sequence[T], task_fd: int, result_fd: int, stderr: IO[bytes], memory: int) -> None:
    """In the child: take task numbers until the parent closes the pipe; send ('ok', result) or ('error', text) for each."""
    code = 0
    try:
        os.dup2(stderr.fileno(), 2)  # a Rust abort message is kept for the finding, not printed over the report
        import faulthandler
        faulthandler.disable()  # an abort here is reported as a finding; no dump of the parent's stacks
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _limit_memory(memory)
        while True:
            header = _read_exactly(task_fd, _HEADER.size)
            if not header:
                break
            (index,) = _HEADER.unpack(header)
            try:
                message = pickle.dumps(("ok", work(tasks[index])), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # a Rust panic (pyo3 PanicException) derives from BaseException
                message = pickle.dumps(("error", f"{type(exc).__name__}: {str(exc)[:200]}"))
            view = memoryview(_HEADER.pack(len(message)) + message)
            while view:
                written = os.write(result_fd, view)
                view = view[written:]
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _describe(status: int, stderr: IO[bytes]) -> str:
    try:
        stderr.seek(0)
        lines = stderr.read(2000).decode("utf-8", "replace").splitlines()
    except (OSError, ValueError):
        lines = []
    # the first line says why ("memory allocation of 233424420672 bytes failed"); a backtrace may follow
    last = next((line.strip() for line in lines if line.strip()), "")
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        what = f"the reader was stopped by {name}"
        if number == signal.SIGABRT:
            what += " (it aborted, usually because it ran out of memory)"
    elif os.WIFEXITED(status):
        what = f"the reader exited with status {os.WEXITSTATUS(status)}"
    else:
        what = "the reader stopped"
    if last:
        what += f": {last[:160]}"
    return what


def run_isolated(tasks: Sequence[T], work: Callable[[T], R], jobs: int, timeout: float, memory: int,
                 on_failure: Callable[[T, Failure], R], progress: Optional[Callable[[int, int], None]] = None,
                 tasks_per_worker: int = 100) -> Iterator[R]:
    """`work(task)` for each task in forked workers, at most `jobs` at once; results in completion order.

    A worker takes one task at a time from the parent. `memory`: bytes a worker may map beyond what it
    inherits (0: no limit); `timeout`: seconds per task. A worker that dies or overruns is killed, its task
    becomes `on_failure(task, Failure)` and a new worker takes the next task; nothing waits without a limit.
    Workers are replaced after `tasks_per_worker` tasks, so memory a file leaves behind does not add up.
    """
    total = len(tasks)
    queue = list(range(total))
    queue.reverse()
    workers: dict[int, _Worker] = {}  # results fd -> worker
    finished = 0

    def spawn() -> None:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        stderr = tempfile.TemporaryFile()
        pid = os.fork()
        if pid == 0:  # the child: only its own two pipe ends stay open
            os.close(task_w)
            os.close(result_r)
            for other in workers.values():
                for fd in (other.tasks, other.results):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            _worker_main(work, tasks, task_r, result_w, stderr, memory)
        os.close(task_r)
        os.close(result_w)
        workers[result_r] = _Worker(pid, task_w, result_r, stderr)

    def retire(worker: _Worker, kill: bool) -> int:
        del workers[worker.results]
        if kill:
            _kill(worker.pid)
        for fd in (worker.tasks, worker.results):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            _, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            status = 0
        return status

    def assign(worker: _Worker) -> None:
        if not queue or worker.done >= tasks_per_worker:
            return
        worker.current = queue.pop()
        worker.started = time.monotonic()
        worker.data = bytearray()
        os.write(worker.tasks, _HEADER.pack(worker.current))

    try:
        while queue or any(w.current is not None for w in workers.values()):
            for worker in [w for w in workers.values() if w.current is None]:  # idle: retire when done or worn
                if not queue or worker.done >= tasks_per_worker:
                    retire(worker, kill=False)
            while queue and len(workers) < max(1, jobs):
                spawn()
            for worker in list(workers.values()):
                if worker.current is None:
                    assign(worker)
            busy = [w for w in workers.values() if w.current is not None]
            if not busy:
                continue
            wait = max(0.0, min(w.started + timeout for w in busy) - time.monotonic())
            ready, _, _ = select.select([w.results for w in busy], [], [], min(wait, 5.0))
            for fd in ready:
                worker = workers[fd]
                chunk = os.read(fd, 1 << 20)
                index = worker.current
                assert index is not None
                if not chunk:  # the worker died in the middle of a task
                    status = retire(worker, kill=True)
                    detail = _describe(status, worker.stderr)
                    worker.stderr.close()
                    yield on_failure(tasks[index], Failure("crashed", detail))
                else:
                    worker.data += chunk
                    result = _complete(worker.data)
                    if result is None:
                        continue
                    worker.current = None
                    worker.done += 1
                    kind, value = result
                    yield value if kind == "ok" else on_failure(tasks[index], Failure("crashed", f"the reader failed ({value})"))
                finished += 1
                if progress:
                    progress(finished, total)
            now = time.monotonic()
            for worker in [w for w in workers.values() if w.current is not None and now - w.started > timeout]:
                index = worker.current
                assert index is not None
                retire(worker, kill=True)
                worker.stderr.close()
                yield on_failure(tasks[index], Failure("timeout", f"reading and checking it took longer than {timeout:.0f} s, so it was stopped"))
                finished += 1
                if progress:
                    progress(finished, total)
    finally:  # done, or interrupted: no worker is left behind
        for worker in list(workers.values()):
            retire(worker, kill=worker.current is not None)
            worker.stderr.close()


def _complete(data: bytearray) -> Optional[tuple[str, Any]]:
    if len(data) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack_from(data)
    if len(data) < _HEADER.size + size:
        return None
    return pickle.loads(bytes(data[_HEADER.size:_HEADER.size + size]))  # our own worker's message


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
