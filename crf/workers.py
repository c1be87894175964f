"""Run each input file's read-and-check in its own forked process, watched by the parent.

The workbook library (python-calamine, Rust) aborts the whole process when an allocation fails
(a hostile cell reference can ask for hundreds of GB) and a Rust panic is not an `Exception`. So
every file is checked in a child forked for it, with an address-space limit and a time limit; the
parent reads the child's pickled outcome from a pipe and watches every child itself (no pool's
blocking map that waits forever for a result a dead worker will never send). A child that dies,
aborts or overruns its time becomes one finding naming its file; the other files are still checked.

Forking per file costs a few milliseconds against hundreds for reading a workbook, and it also
means no state can be carried from one file to the next: findings are a function of the file alone.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Callable, Generic, Iterator, Optional, Sequence, TypeVar

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
class _Child(Generic[T]):
    index: int
    task: T
    pid: int
    fd: int
    stderr: IO[bytes]
    started: float
    data: bytearray
    timed_out: bool = False


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


def _child_main(work: Callable[[T], R], task: T, fd: int, stderr: IO[bytes], memory: int) -> None:
    """In the child: run, send ('ok', result) or ('error', text), exit without running the parent's cleanups."""
    code = 0
    try:
        os.dup2(stderr.fileno(), 2)  # a Rust abort message is kept for the finding, not printed over the report
        import faulthandler
        faulthandler.disable()  # an abort here is reported as a finding; no dump of the parent's stacks
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _limit_memory(memory)
        try:
            message = pickle.dumps(("ok", work(task)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # a Rust panic (pyo3 PanicException) derives from BaseException
            message = pickle.dumps(("error", f"{type(exc).__name__}: {str(exc)[:200]}"))
        view = memoryview(_HEADER.pack(len(message)) + message)
        while view:
            written = os.write(fd, view)
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
                 on_failure: Callable[[T, Failure], R], progress: Optional[Callable[[int, int], None]] = None) -> Iterator[R]:
    """`work(task)` for each task, each in a forked child, at most `jobs` at once; results in completion order.

    `memory`: bytes a child may map beyond what it inherits (0: no limit); `timeout`: seconds per task.
    A child that sends no result becomes `on_failure(task, Failure)`; nothing here waits without a limit.
    """
    pending = list(enumerate(tasks))
    pending.reverse()
    running: dict[int, _Child[T]] = {}
    done = 0
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                index, task = pending.pop()
                read_fd, write_fd = os.pipe()
                stderr = tempfile.TemporaryFile()
                pid = os.fork()
                if pid == 0:  # the child
                    os.close(read_fd)
                    _child_main(work, task, write_fd, stderr, memory)
                os.close(write_fd)
                running[read_fd] = _Child(index, task, pid, read_fd, stderr, time.monotonic(), bytearray())
            now = time.monotonic()
            wait = max(0.0, min(c.started + timeout for c in running.values()) - now)
            ready, _, _ = select.select(list(running), [], [], min(wait, 5.0))
            for fd in ready:
                child = running[fd]
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    child.data += chunk
                    continue
                del running[fd]  # end of file: the child has finished or died
                os.close(fd)
                yield _finish(child, on_failure)
                done += 1
                if progress:
                    progress(done, len(tasks))
            now = time.monotonic()
            for fd, child in list(running.items()):
                if now - child.started > timeout:
                    child.timed_out = True
                    _kill(child.pid)
                    del running[fd]
                    os.close(fd)
                    yield _finish(child, on_failure, timeout)
                    done += 1
                    if progress:
                        progress(done, len(tasks))
    finally:  # an interrupted run leaves no child behind
        for fd, child in running.items():
            _kill(child.pid)
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            os.close(fd)
            child.stderr.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _finish(child: _Child[T], on_failure: Callable[[T, Failure], R], timeout: float = 0.0) -> R:
    try:
        _, status = os.waitpid(child.pid, 0)
    except ChildProcessError:
        status = 0
    try:
        if child.timed_out:
            return on_failure(child.task, Failure("timeout", f"reading and checking it took longer than {timeout:.0f} s, so it was stopped"))
        data = bytes(child.data)
        if len(data) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(data)
            if len(data) == _HEADER.size + size:
                kind, value = pickle.loads(data[_HEADER.size:])
                if kind == "ok":
                    return value  # type: ignore[no-any-return]  # what `work` returned, pickled by our own child
                return on_failure(child.task, Failure("crashed", f"the reader failed ({value})"))
        return on_failure(child.task, Failure("crashed", _describe(status, child.stderr)))
    finally:
        child.stderr.close()
