"""kill -9 loop: a 20-job pipeline whose jobs append "<job> <attempt>" to side.txt when they
finish; the runner is SIGKILLed at a random moment, then resumed (and sometimes killed again
while resuming), until the run ends.

After every kill: the run file replays, `pt pipeline verify`'s checks pass (in-process, the
same `verify_run`), and every job DONE so far has exactly one side-effect line, for the attempt
that succeeded. At the end: no job DONE at any kill ran again, no attempt ran twice, the final
state (outcome, each job's status) equals an uninterrupted run's, the chain verifies, and a
secret planted in the environment appears in no file written.

Runners are real processes forked from a pre-imported `pt` (tests/faults/zygote.py), except
the reference run, which uses the `pt` executable.

Sizes: PT_FAULTS_KILLS trials (CI 200, full 10,000); docs/RELIABILITY.md explains the choice.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from pulsaride.engine.errors import RunFileError
from pulsaride.engine.evidence import load_evidence
from pulsaride.engine.jsonl_store import RunFile
from pulsaride.engine.layout import StateDir
from pulsaride.engine.replay import replay
from pulsaride.projections.verify import verify_run
from tests.conftest import run_pt
from tests.runfile_checks import check_run_file, lock_is_free

from .conftest import Proc, Tally, Zygote, runs_dir, seed, size, wait_for

SECRET = "kill-loop-s3cret-0f9a7d"
ENV = {"DB_PASSWORD": SECRET}
JOB_SCRIPT = """\
echo "working with $DB_PASSWORD"
sleep "$1"
if [ "$PT_JOB" = flaky ] && [ "$PT_ATTEMPT" -lt 2 ]; then exit 1; fi
echo "$PT_JOB $PT_ATTEMPT" >> side.txt
if [ "$PT_JOB" = broken ]; then exit 3; fi
exit 0
"""


def _pipeline() -> str:
    jobs = {}
    for n in range(1, 7):
        jobs[f"e{n}"] = {"stage": "extract", "command": f"sh job.sh 0.0{n}"}
        jobs[f"l{n}"] = {"stage": "load", "command": f"sh job.sh 0.0{7 - n}", "needs": [f"e{n}"]}
    jobs["flaky"] = {"stage": "check", "command": "sh job.sh 0.02", "needs": ["l1"],
                     "retry": 1}
    jobs["broken"] = {"stage": "check", "command": "sh job.sh 0.02", "needs": ["l2"]}
    jobs["after-broken"] = {"stage": "check", "command": "sh job.sh 0.01", "needs": ["broken"]}
    jobs["c4"] = {"stage": "check", "command": "sh job.sh 0.03", "needs": ["l3", "l4"]}
    jobs["c5"] = {"stage": "check", "command": "sh job.sh 0.01", "needs": ["l5", "l6"]}
    jobs["f1"] = {"stage": "finish", "command": "sh job.sh 0.02", "needs": ["flaky", "c4"]}
    jobs["f2"] = {"stage": "finish", "command": "sh job.sh 0.01", "needs": ["c5"]}
    jobs["report"] = {"stage": "finish", "command": "sh job.sh 0.01", "when": "always",
                      "needs": ["after-broken"]}
    lines = ["stages: [extract, load, check, finish]", "jobs:"]
    lines += [f"  {name}: {orjson.dumps(spec).decode()}" for name, spec in jobs.items()]
    return "\n".join(lines) + "\n"


PIPELINE = _pipeline()
RUN_ID = "k"


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "pulsaride-pipeline.yml").write_text(PIPELINE)
    (folder / "job.sh").write_text(JOB_SCRIPT)
    return folder


def _effects(folder: Path) -> list[tuple[str, int]]:
    side = folder / "side.txt"
    if not side.exists():
        return []
    return [(job, int(attempt)) for job, attempt in
            (line.split() for line in side.read_text().splitlines())]


def _final_state(records: list[dict[str, Any]]) -> dict[str, Any]:
    status: dict[str, str] = {}
    for record in records:
        if record["event"].startswith("Job"):
            status[record["job"]] = record["status"]
    outcomes = [r["outcome"] for r in records if r["event"] == "RunFinished"]
    return {"outcome": outcomes[-1] if outcomes else None, "jobs": status}


def _read(folder: Path) -> tuple[list[dict[str, Any]], bool] | None:
    """Replay the run file with the engine: (lines, has a torn tail), or None if the run never
    recorded its start (the runner died before its first line was durable)."""
    path = runs_dir(folder) / f"{RUN_ID}.jsonl"
    if not path.exists():
        return None
    run_file = RunFile.open(path, RUN_ID)
    try:
        try:
            replay(run_file)
        except RunFileError as exc:
            assert run_file.lines == 0 and "no complete line" in str(exc), str(exc)
            return None
        torn = run_file.tail is not None
    finally:
        run_file.close()
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in complete.splitlines()], torn


def _verify(folder: Path, *, torn_allowed: bool) -> None:
    report = verify_run(load_evidence(StateDir(folder / ".pulsaride"), RUN_ID))
    findings = [f for f in report.findings if not (torn_allowed and f.check == "tail")]
    assert findings == [], [f.text() for f in findings]


def _done(records: list[dict[str, Any]]) -> dict[str, int]:
    """Jobs DONE in `records` and the attempt that made each DONE."""
    return {r["job"]: r["attempt"] for r in records if r["event"] == "JobSucceeded"}


def _check_effects(folder: Path, done: dict[str, int], frozen: dict[str, list[int]]) -> None:
    effects = _effects(folder)
    repeated = [e for e, n in Counter(effects).items() if n > 1]
    assert not repeated, f"an attempt ran twice: {repeated}"
    by_job: dict[str, list[int]] = {}
    for job, attempt in effects:
        by_job.setdefault(job, []).append(attempt)
    for job, attempt in done.items():
        mine = by_job.get(job, [])
        assert mine.count(attempt) == 1, (job, attempt, mine)
        assert max(mine) == attempt, f"{job} ran again after it was DONE: {mine}"
    for job, seen in frozen.items():
        assert by_job.get(job, []) == seen, f"{job}, DONE at a kill, ran again: {by_job[job]}"


def _after(proc: Proc, landed: bool, folder: Path, frozen: dict[str, list[int]],
           tally: Tally) -> list[dict[str, Any]] | None:
    """The checks after one runner ended (killed or not); the run's lines, or None if it never
    recorded its start."""
    if landed:
        tally.add("kills landed")
        # Job processes of the dead runner still hold the run lock: let them end.
        lock = runs_dir(folder) / f"{RUN_ID}.lock"
        wait_for(lambda: not lock.exists() or lock_is_free(lock), "the dead runner's jobs to end")
    else:
        assert proc.status in (0, 1), (proc.status, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
    read = _read(folder)
    if read is None:
        assert landed, proc.stderr
        tally.add("kills before the first line was durable")
        return None
    records, torn = read
    tally.add("torn tails after a kill", torn)
    _verify(folder, torn_allowed=landed)
    done = _done(records)
    effects = _effects(folder)
    for job in done:
        frozen.setdefault(job, [a for j, a in effects if j == job])
    _check_effects(folder, done, frozen)
    return records


def _trial(zygote: Zygote, folder: Path, rng: random.Random, budget: float,
           tally: Tally) -> dict[str, Any]:
    pipeline = str(folder / "pulsaride-pipeline.yml")
    frozen: dict[str, list[int]] = {}  # effects of jobs DONE at some kill
    started = False
    for segment in range(50):
        args = (("pipeline", "resume", pipeline, "--run-id", RUN_ID) if started
                else ("pipeline", "run", pipeline, "--run-id", RUN_ID))
        proc = zygote.spawn(*args, "-q", cwd=folder, env=ENV)
        # The first runner is always killed at a random moment; a resuming one half the time.
        kill = segment == 0 or rng.random() < 0.5
        if kill:
            moment = time.monotonic() + rng.uniform(0, budget)
            while time.monotonic() < moment and proc.poll() is None:
                time.sleep(0.002)
            landed = proc.kill()
        else:
            proc.wait()
            landed = False
        tally.add("runner processes")
        records = _after(proc, landed, folder, frozen, tally)
        if records is None:  # died before recording the run's start: start it again
            started = False
            continue
        started = True
        if any(r["event"] == "RunFinished" for r in records):
            if landed:
                tally.add("kills after the run finished")
            break
    else:
        raise AssertionError("the run did not end after 50 runners")
    records = check_run_file(runs_dir(folder) / f"{RUN_ID}.jsonl")
    _verify(folder, torn_allowed=False)
    _check_effects(folder, _done(records), frozen)
    tally.add("DONE jobs checked", len(_done(records)))
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith(".pt-"):
            assert SECRET.encode() not in path.read_bytes(), f"the secret leaked into {path}"
    return _final_state(records)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(zygote: Zygote, tmp_path: Path) -> None:
    reference_folder = _folder(tmp_path, "reference")
    reference = run_pt("pipeline", "run", str(reference_folder / "pulsaride-pipeline.yml"),
                       "--run-id", RUN_ID, "-q", cwd=reference_folder, env=ENV)
    assert reference.returncode == 1, reference.stderr  # `broken` fails: the run fails
    expected = _final_state(check_run_file(runs_dir(reference_folder) / f"{RUN_ID}.jsonl"))
    assert expected["outcome"] == "failed"
    assert Counter(expected["jobs"].values()) == {"DONE": 18, "FAILED": 1, "SKIPPED": 1}
    verify = run_pt("pipeline", "verify", str(reference_folder / "pulsaride-pipeline.yml"),
                    "--run-id", RUN_ID, cwd=reference_folder)
    assert verify.returncode == 0, verify.stdout

    # How long one uninterrupted runner takes here: kill moments are drawn up to that.
    timing = _folder(tmp_path, "timing")
    began = time.monotonic()
    zygote.run("pipeline", "run", str(timing / "pulsaride-pipeline.yml"), "--run-id", RUN_ID,
               "-q", cwd=timing, env=ENV)
    budget = (time.monotonic() - began) * 1.1

    rng = random.Random(seed())
    trials = size("kills", ci=200, full=10_000)
    tally = Tally("kill -9 loop")
    for number in range(trials):
        folder = _folder(tmp_path, f"trial-{number}")
        final = _trial(zygote, folder, rng, budget, tally)
        assert final == expected, f"trial {number}: final state differs"
        shutil.rmtree(folder)
    tally.add("trials", trials)
    tally.save(**{"DONE jobs re-run": 0, "final state differs": 0,
                  "runner seconds drawn up to": round(budget, 2)})

