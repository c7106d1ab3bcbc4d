"""A fork server for `pt` runner processes: imports everything `pt` imports once, then forks a
child per request that runs `pulsaride.cli.main.main` exactly as the `pt` console script does.

The fault tests start thousands of runners and kill them; each real `pt` start costs about
0.7 s of CPU in imports alone. A forked child is still a real, separate process (its own pid,
file descriptors, flock ownership, job processes), killed with a real SIGKILL.

Protocol (one JSON object per line on stdin, one answer per line on stdout):
  {"op": "spawn", "args": [...], "cwd": DIR, "env": {...}, "out": FILE, "err": FILE,
   "rlimit_as": BYTES or null} -> {"pid": N}
  {"op": "wait", "pid": N, "timeout": SECONDS} -> {"pid": N, "status": CODE or null}
      CODE is the exit code, or minus the signal number that ended the child.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from pulsaride.cli.main import main


def _child(request: dict) -> None:
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, 1024)
        if request.get("rlimit_as"):  # bound the child's memory (address space)
            resource.setrlimit(resource.RLIMIT_AS, (request["rlimit_as"], request["rlimit_as"]))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["pt"], *request["args"]]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as exc:  # report anything; never return into the server
        os.write(2, f"zygote child: {type(exc).__name__}: {exc}\n".encode())
        code = 99
    os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(request)
            answers.write(json.dumps({"pid": pid}) + "\n")
        elif request["op"] == "wait":
            status = _wait(request["pid"], request["timeout"])
            answers.write(json.dumps({"pid": request["pid"], "status": status}) + "\n")


if __name__ == "__main__":
    serve()
