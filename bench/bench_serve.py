#!/usr/bin/env python3
"""How fast `pt serve` renders the page of a 1,000-job run (the goal: under a second).

Generation (not timed as the benchmark): a pipeline of `--stages` stages x `--lanes` lanes of
`true` jobs (1000 by default; job lane-I-S needs lane-I-(S-1)), run for real by
`pt pipeline run --parallelism 8`, so the run file, logs and pipeline copy are the engine's own.

Then, against a real `pt serve` process on a free loopback port:

  (i)   HTTP: GET of the run page /runs/ID, of its live fragment /runs/ID/live (what a live
        update fetches), of /api/runs/ID and of the runs page /, each `--repeats` times,
        interleaved; the median and the 90th percentile of the time to the whole body;
  (ii)  browser: headless Chromium (/usr/bin/chromium through Playwright) opens /runs/ID
        `--browser-repeats` times in a fresh context; from the page's navigation timing:
        response end, DOMContentLoaded and load (all from the start of the navigation), and
        the cost of one live update as the page does it (fetch the fragment, swap it in,
        force layout);
  (iii) in-process breakdown of the server's work for one page: replay + status document
        (engine.run_views.read_run, projections.documents.run_document), the SVG
        (projections.dag_svg.render_dag) and the
        template; and for the timeline fragment the page loads when its <details> is opened.

    .venv/bin/python bench/bench_serve.py [--lanes 250 --stages 4] [--repeats 20] [--json]
                                          [--save] [--no-browser] [--profile 25]

Timing never goes into the test suite; this is run by hand.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # type: ignore[import-not-found]  # the script next to this one
import httpx

RUN_ID = "bench-serve"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
GOAL_S = 1.0


class BenchError(Exception):
    """The benchmark could not run."""


# ---- generation ------------------------------------------------------------------------------


def pipeline_text(lanes: int, stages: int) -> str:
    names = [f"s{s}" for s in range(stages)]
    lines = ['version: "1.0"', f"stages: [{', '.join(names)}]", "jobs:"]
    for s in range(stages):
        for lane in range(lanes):
            lines.append(f"  lane-{lane}-{s}:")
            lines.append(f"    stage: s{s}")
            lines.append("    command: 'true'")
            if s:
                lines.append(f"    needs: [lane-{lane}-{s - 1}]")
    return "\n".join(lines) + "\n"


def generate(pt: str, work: Path, lanes: int, stages: int) -> dict[str, Any]:
    pipeline = work / "pulsaride-pipeline.yml"
    pipeline.write_text(pipeline_text(lanes, stages))
    state = work / "state"
    started = time.perf_counter()
    result = subprocess.run([pt, "pipeline", "run", str(pipeline), "--state-dir", str(state),
                             "--run-id", RUN_ID, "--parallelism", "8", "-q"],
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"pt pipeline run exited {result.returncode}: {result.stderr[-500:]}")
    run_file = state / "pipeline-runs" / f"{RUN_ID}.jsonl"
    return {"jobs": lanes * stages, "stages": stages, "lanes": lanes,
            "needs": lanes * (stages - 1), "state": str(state),
            "run_file_lines": len(run_file.read_bytes().splitlines()),
            "run_file_bytes": run_file.stat().st_size,
            "generation_s": time.perf_counter() - started}


# ---- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serve:
    """`pt serve --state-dir STATE` on a free port, stopped with Ctrl-C."""

    def __init__(self, pt: str, state: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.process = subprocess.Popen([pt, "serve", "--state-dir", str(state), "--port",
                                         str(self.port)], stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise BenchError(f"pt serve exited {self.process.returncode}: "
                                 f"{log.read_text()[-500:]}")
            try:
                if self.client.get("/openapi.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("pt serve did not answer within 60 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {"median_s": statistics.median(ordered),
            "p90_s": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
            "min_s": ordered[0], "max_s": ordered[-1], "times_s": times}


def http_times(server: Serve, repeats: int) -> dict[str, Any]:
    paths = {"run page": f"/runs/{RUN_ID}", "live fragment": f"/runs/{RUN_ID}/live",
             "api run": f"/api/runs/{RUN_ID}", "runs page": "/"}
    times: dict[str, list[float]] = {name: [] for name in paths}
    sizes: dict[str, int] = {}
    for path in paths.values():  # warm-up: imports, template compilation, page cache
        server.client.get(path)
    for _ in range(repeats):
        for name, path in paths.items():
            started = time.perf_counter()
            response = server.client.get(path)
            body = response.content
            times[name].append(time.perf_counter() - started)
            if response.status_code != 200:
                raise BenchError(f"GET {path}: {response.status_code}")
            sizes[name] = len(body)
    return {name: {"path": paths[name], "bytes": sizes[name], **summary(times[name])}
            for name in paths}


# ---- the browser -----------------------------------------------------------------------------

_LIVE_UPDATE_JS = """async () => {
  const live = document.getElementById('live');
  const started = performance.now();
  const html = await (await fetch(live.dataset.src, {cache: 'no-store'})).text();
  live.innerHTML = html;
  void document.body.offsetHeight;  // force style and layout
  return performance.now() - started;
}"""


def browser_times(url: str, repeats: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional part

    marks: dict[str, list[float]] = {"response end": [], "DOMContentLoaded": [], "load": [],
                                     "live update": []}
    boxes = 0
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats + 1):  # the first is a warm-up
                context = chromium.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                page.goto(f"{url}/runs/{RUN_ID}", wait_until="load", timeout=120_000)
                timing = page.evaluate("""() => {
                    const n = performance.getEntriesByType('navigation')[0];
                    return [n.responseEnd, n.domContentLoadedEventEnd, n.loadEventEnd];
                }""")
                update = page.evaluate(_LIVE_UPDATE_JS)
                boxes = page.locator("svg.dag g.job").count()
                context.close()
                if _ == 0:
                    continue
                for name, value in zip(("response end", "DOMContentLoaded", "load"), timing,
                                       strict=True):
                    marks[name].append(value / 1000)
                marks["live update"].append(update / 1000)
        finally:
            chromium.close()
    return {"job_boxes": boxes, **{name: summary(values) for name, values in marks.items()}}


# ---- in-process breakdown --------------------------------------------------------------------


def breakdown(state: Path, repeats: int, profile: int) -> dict[str, Any]:
    from pulsaride.engine.layout import StateDir  # noqa: PLC0415
    from pulsaride.projections.dag_svg import render_dag  # noqa: PLC0415
    from pulsaride.web.app import TEMPLATES  # noqa: PLC0415
    from pulsaride.web.app import run_document_of as run_document  # noqa: PLC0415

    states = StateDir(state)
    document = run_document(states, RUN_ID)
    with_timeline = run_document(states, RUN_ID, with_timeline=True)
    svg = render_dag(document)
    page, fragment = TEMPLATES.get_template("run.html"), TEMPLATES.get_template("_timeline.html")
    context = {"run_id": RUN_ID, "health": None, "damaged": None, "document": document,
               "dag": svg, "approve": "pt pipeline approve", "request": None}
    steps: dict[str, Callable[[], object]] = {
        "page: run_document (replay, status)": lambda: run_document(states, RUN_ID),
        "page: render_dag (SVG)": lambda: render_dag(document),
        "page: template (run.html)": lambda: page.render(context),
        "timeline, when opened: run_document": lambda: run_document(
            states, RUN_ID, with_timeline=True),
        "timeline, when opened: template": lambda: fragment.render(
            {"document": with_timeline}),
    }
    result: dict[str, Any] = {"svg_bytes": len(svg),
                              "timeline_entries": len(with_timeline["timeline"])}
    for name, step in steps.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        result[name] = summary(times)
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for step in steps.values():
            step()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return result


# ---- report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {"host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average": os.getloadavg()}


def render(doc: dict[str, Any]) -> str:
    gen, load = doc["generated"], ", ".join(f"{x:.2f}" for x in doc["machine"]["load_average"])
    out = [f"pt serve, the page of a {gen['jobs']}-job run ({gen['stages']} stages x "
           f"{gen['lanes']} lanes, {gen['needs']} needs; run file {gen['run_file_lines']} lines, "
           f"{gen['run_file_bytes'] / 1e6:.1f} MB) ({doc['machine']['cpus']} CPUs, Python "
           f"{doc['machine']['python']}, load average at the end {load})", "",
           f"HTTP, median of {doc['repeats']} (time to the whole body):",
           f"  {'':<16}{'median':>9}{'p90':>9}{'max':>9}{'size':>10}"]
    for name, row in doc["http"].items():
        out.append(f"  {name:<16}{row['median_s'] * 1000:>7.0f}ms{row['p90_s'] * 1000:>7.0f}ms"
                   f"{row['max_s'] * 1000:>7.0f}ms{row['bytes'] / 1e6:>8.2f}MB  {row['path']}")
    if doc.get("browser"):
        browser = doc["browser"]
        out += ["", f"Chromium, median of {doc['browser_repeats']} (from the start of the "
                    f"navigation; {browser['job_boxes']} job boxes drawn):"]
        for name in ("response end", "DOMContentLoaded", "load", "live update"):
            row = browser[name]
            out.append(f"  {name:<18}{row['median_s'] * 1000:>7.0f}ms  (p90 "
                       f"{row['p90_s'] * 1000:.0f}ms, max {row['max_s'] * 1000:.0f}ms)")
    parts = doc["breakdown"]
    out += ["", f"server work for one page, in-process, median of {doc['repeats']} "
                f"(SVG {parts['svg_bytes'] / 1e3:.0f} kB, timeline "
                f"{parts['timeline_entries']} entries):"]
    for name, row in parts.items():
        if isinstance(row, dict):
            out.append(f"  {name:<40}{row['median_s'] * 1000:>7.0f}ms")
    worst = max(doc["http"]["run page"]["median_s"],
                doc["browser"]["load"]["median_s"] if doc.get("browser") else 0.0)
    verdict = "meets" if worst < GOAL_S else "MISSES"
    out += ["", f"goal: the run page under {GOAL_S:.0f} s -> {verdict} it "
                f"(slowest median {worst * 1000:.0f} ms)"]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=250)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--repeats", "-n", type=int, default=20, help="HTTP requests per path")
    parser.add_argument("--browser-repeats", type=int, default=5, help="page loads in Chromium")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="print a cProfile of the in-process steps (TOP lines) to stderr")
    parser.add_argument("--pt", default=harness.default_pt(), help="the pt executable")
    parser.add_argument("--workdir", type=Path, help="where to work [default: temp dir]")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    harness.add_report_options(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.lanes < 1 or args.stages < 1 or args.browser_repeats < 1:
        parser.error("need --repeats, --lanes, --stages and --browser-repeats >= 1")
    return args


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    print(f"generating a {args.lanes * args.stages}-job run ...", file=sys.stderr, flush=True)
    generated = generate(args.pt, work, args.lanes, args.stages)
    server = Serve(args.pt, Path(generated["state"]), work / "serve.log")
    try:
        print("HTTP ...", file=sys.stderr, flush=True)
        http = http_times(server, args.repeats)
        browser = None
        if not args.no_browser:
            print("Chromium ...", file=sys.stderr, flush=True)
            browser = browser_times(server.url, args.browser_repeats)
    finally:
        server.stop()
    print("breakdown ...", file=sys.stderr, flush=True)
    parts = breakdown(Path(generated["state"]), args.repeats, args.profile)
    return {"benchmark": "serve", "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": machine(), "repeats": args.repeats,
            "browser_repeats": args.browser_repeats, "generated": generated, "http": http,
            "browser": browser, "breakdown": parts, "goal_s": GOAL_S}


def main(argv: Sequence[str] | None = None) -> int:
    return harness.main("serve", parse_args(argv), run_benchmark, render, errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
