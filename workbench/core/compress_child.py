"""`compress_job` in a child Python process, for a window that must stay responsive meanwhile.

A per-image optimization imports torch and, at its first optimizer step, more of torch's modules; an
import holds the interpreter lock for up to hundreds of milliseconds, and so do some of torch's
operations between their lock-free parts. In a thread of the window's process each of those is a
frozen window. A child process shares no lock with the window: the window's side of this job only waits
on a pipe and parses one line per step.

The child runs the very `compress_job` that `workbench compress` runs (one code path) and speaks a
line protocol on its stdout: one JSON object per progress event, then the result or the error. It
computes a step only after the parent has taken the previous event (it reads a line from its stdin),
so pausing the consumer pauses the child, as pausing an in-process generator would. The image goes in
and the result's bytes and decoded picture come out as `.npy` files in a private temporary folder, so
nothing is ever unpickled. Closing the job (cancel) kills the child at once; while no event comes, the
job repeats its last event every `HEARTBEAT_S` without metrics, so a cancel is noticed within that
time even while the child is still importing torch or loading its model.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from workbench.core import errors
from workbench.core.compress import CompressResult, Quality, plain_options, compress_job
from workbench.core.jobs import Job, Progress

#: Longest wait for the child without an event: how late a cancel may be noticed.
HEARTBEAT_S = 0.2
IMAGE, REQUEST, DATA, DECODED, STDERR = "image.npy", "request.json", "data.npy", "decoded.npy", "stderr.txt"


def compress_job_in_child(rgb: np.ndarray, codec: str, options: Any = None,
                          python: str | None = None) -> Job[CompressResult]:
    """`compress_job(rgb, codec, options)` computed by a child process (`python`, default this one's)."""
    with tempfile.TemporaryDirectory(prefix="workbench-encode-") as tmp:
        folder = Path(tmp)
        np.save(folder / IMAGE, np.ascontiguousarray(rgb), allow_pickle=False)
        (folder / REQUEST).write_text(json.dumps({"codec": codec, "options": plain_options(options)}), encoding="utf-8")
        with open(folder / STDERR, "wb") as stderr:
            child = subprocess.Popen([python or sys.executable, "-m", __name__, str(folder)], env=_child_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True).start()
        last = Progress(0, None, "starting the encoder")
        try:
            while True:
                try:
                    line = lines.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield replace(last, metrics={})
                    continue
                if not line:
                    raise _crashed(child, folder)
                message = json.loads(line)
                if message["kind"] == "progress":
                    last = Progress(message["step"], message["total"], message["message"], message["metrics"])
                    yield last
                    try:
                        child.stdin.write(b"\n")        # the child computes the next step only now
                        child.stdin.flush()
                    except OSError:                     # it has ended: the end of its output says how
                        pass
                else:
                    _end(child)                         # it exits now: let it, rather than kill it below
                    if message["kind"] == "result":
                        return _result(message, folder)
                    raise _error(message)
        finally:
            if child.poll() is None:                   # closed early (cancelled): stop it at once
                child.kill()
            child.wait()
            try:
                child.stdin.close()
            except OSError:                             # the killed child's end is gone
                pass


def _child_env() -> dict[str, str]:
    """This process's environment, with this copy of the workbench first on the child's import path (the
    one that runs, whether installed or not)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _end(child: subprocess.Popen, wait_s: float = 10.0) -> None:
    try:
        child.wait(wait_s)
    except subprocess.TimeoutExpired:
        child.kill()


def _read_lines(stream: IO[bytes], lines: queue.Queue) -> None:
    """Hands every line of the child's protocol to the job, then b"" at the end of it (this thread closes
    the pipe: closing it under a blocked read would fail)."""
    with stream:
        for line in iter(stream.readline, b""):
            lines.put(line)
    lines.put(b"")


def _result(message: dict, folder: Path) -> CompressResult:
    return CompressResult(codec=message["codec"], options=message["options"],
                          data=np.load(folder / DATA, allow_pickle=False).tobytes(),
                          reconstruction=np.load(folder / DECODED, allow_pickle=False),
                          quality=Quality(**message["quality"]), encode_s=message["encode_s"],
                          decode_s=message["decode_s"], estimated_bits=message["estimated_bits"])


def _error(message: dict) -> BaseException:
    """The child's error as the parent would have raised it: a user-facing error of the same class, a
    failed allocation as one (the app shows both as one line), anything else as a bug."""
    kind, text = message.get("type", ""), message.get("message", "")
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.WorkbenchError):
        return cls(text)
    if kind == "MemoryError":
        return MemoryError(text)
    return RuntimeError(f"{kind}: {text} (in the encoder's process)")


def _crashed(child: subprocess.Popen, folder: Path) -> BaseException:
    code = child.wait()
    lines = (folder / STDERR).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return RuntimeError(f"the encoder's process ended with status {code} without a result"
                        + (f": {lines[-1]}" if lines else ""))


# --- the child ----------------------------------------------------------------------------------------

def child_main(folder: Path) -> int:
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(**message: Any) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        request = json.loads((folder / REQUEST).read_text(encoding="utf-8"))
        job = compress_job(np.load(folder / IMAGE, allow_pickle=False), request["codec"], None, **request["options"])
        try:
            while True:
                event = next(job)
                send(kind="progress", step=event.step, total=event.total, message=event.message,
                     metrics={k: float(v) for k, v in event.metrics.items()})
                if not sys.stdin.readline():                  # the parent is gone
                    job.close()
                    return 0
        except StopIteration as stop:
            result: CompressResult = stop.value
        np.save(folder / DATA, np.frombuffer(result.data, np.uint8), allow_pickle=False)
        np.save(folder / DECODED, result.reconstruction, allow_pickle=False)
        send(kind="result", codec=result.codec, options=result.options, quality=asdict(result.quality),
             encode_s=result.encode_s, decode_s=result.decode_s, estimated_bits=result.estimated_bits)
    except errors.WorkbenchError as err:
        send(kind="error", type=type(err).__name__, message=str(err))
    except Exception as err:
        if errors.out_of_memory(err):
            send(kind="error", type="MemoryError", message=errors.OUT_OF_MEMORY)
        else:
            traceback.print_exc()
            send(kind="error", type=type(err).__name__, message=str(err))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(Path(sys.argv[1])))
