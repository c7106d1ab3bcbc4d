"""The dashboard's pages in a real headless Chromium, against `pt serve` as a real process.

One server per module, over a copy of the session's runs (succeeded, failed, waiting at a
gate) and the migrated SQLite target of the Migration Health panel. What the pages show is
checked against what the CLI says about the same files: `pt pipeline status --json` for a
run, the run file itself for the runs list, `pt health --json` for the panel.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PT, jobs_of
from tests.web.conftest import (
    HealthWorld,
    RunsWorld,
    Server,
    clean_env,
    pt,
    pt_ok,
    run_lines,
    run_pipeline,
    screenshot,
    wait_until,
    write_pipeline,
)

LIVE = """\
    version: "1.0"
    stages: [work, report]
    jobs:
      wait:
        stage: work
        command: echo waiting; while [ ! -f release-me ]; do sleep 0.05; done; echo released
      after:
        stage: report
        command: echo after
        needs: [wait]
    """


@dataclass(frozen=True)
class Site:
    server: Server
    state: Path
    world: RunsWorld
    health: HealthWorld


@pytest.fixture(scope="module")
def site(serve: Any, runs_world: RunsWorld, health_world: HealthWorld,
         tmp_path_factory: pytest.TempPathFactory) -> Site:
    state = runs_world.copy(tmp_path_factory.mktemp("pages") / "state")
    server = serve("--state-dir", state, *health_world.serve_args(health_world.all_transforms))
    return Site(server, state, runs_world, health_world)


def status_json(site: Site, run_id: str) -> dict[str, Any]:
    """`pt pipeline status --json` of a run: the oracle for the run page."""
    name = site.world.runs[run_id][0]
    result = pt("pipeline", "status", site.world.pipelines[name], "--state-dir", site.state,
                "--run-id", run_id, "--json", cwd=site.world.folder)
    assert result.stdout, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def dag_statuses(tab: Page) -> dict[str, str]:
    """Job name -> status, as drawn in the SVG."""
    pairs: list[list[str]] = tab.eval_on_selector_all(
        "svg.dag g.job", "gs => gs.map(g => [g.dataset.job, g.dataset.status])")
    return dict(pairs)


def job_rows(tab: Page) -> dict[str, dict[str, str]]:
    """Job name -> the cells of its #jobs row, by column header."""
    rows: list[dict[str, str]] = tab.eval_on_selector_all("#jobs tr[data-job]", """rows => {
        const heads = Array.from(document.querySelectorAll('#jobs th')).map(th => th.innerText);
        return rows.map(r => Object.assign({job_: r.dataset.job, status_: r.dataset.status},
            Object.fromEntries(Array.from(r.cells).map((c, i) => [heads[i], c.innerText.trim()]))));
    }""")
    return {row["job_"]: row for row in rows}


def expected_arrows(document: dict[str, Any]) -> int:
    return sum(len(job["needs"]) for job in jobs_of(document).values())


def open_log(tab: Page, job: str) -> str:
    """Open the log-tail <details> of a job and return its text once it has loaded."""
    details = tab.locator(f'#jobs details[data-key="{job}"]')
    details.locator("summary").click()
    pre = details.locator("pre")
    expect(pre).not_to_be_empty()
    return pre.inner_text()


# ---- runs page -----------------------------------------------------------------------------


def test_runs_page_lists_every_run_with_outcome_start_end_and_who_started_it(
        site: Site, page: Page) -> None:
    files = sorted(p.stem for p in (site.state / "pipeline-runs").glob("*.jsonl"))
    page.goto(site.server.url + "/")
    rows = page.locator("#runs tr[data-run]")
    expect(rows).to_have_count(len(files))
    shown = page.eval_on_selector_all("#runs tr[data-run]", """rows => rows.map(r => [
        r.dataset.run, r.dataset.outcome, Array.from(r.cells).map(c => c.innerText.trim())])""")
    assert sorted(run for run, _, _ in shown) == files
    for run_id, outcome, cells in shown:
        lines = run_lines(site.state, run_id)
        _pipeline, user, expected = site.world.runs[run_id]
        assert outcome == expected
        # run, pipeline, outcome, started, ended, by, ...
        assert cells[0] == run_id
        assert cells[1] == lines[0]["pipeline"]["path"]
        assert cells[2] == expected
        assert cells[3] == lines[0]["at"][:19].replace("T", " ")
        assert cells[4] == lines[-1]["at"][:19].replace("T", " ")
        assert cells[5] == user
    # newest first, each linking to its page
    starts = [run_lines(site.state, run_id)[0]["at"] for run_id, _, _ in shown]
    assert starts == sorted(starts, reverse=True)
    assert page.locator('#runs a[href="/runs/broken-1"]').count() == 1
    screenshot(page, "runs")


# ---- run pages -----------------------------------------------------------------------------


def test_a_succeeded_run_draws_every_job_done_with_its_needs_as_arrows(site: Site,
                                                                       page: Page) -> None:
    truth = status_json(site, "ok-1")
    page.goto(site.server.url + "/runs/ok-1")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    assert dag_statuses(page) == {"compile": "DONE", "lint": "DONE", "unit": "DONE"}
    assert dag_statuses(page) == {n: j["status"] for n, j in jobs_of(truth).items()}
    assert page.locator("svg.dag path.need").count() == expected_arrows(truth) == 2
    assert page.locator("svg.dag text.stage").all_text_contents() == ["build", "test"]
    rows = job_rows(page)
    for name, job in jobs_of(truth).items():
        assert rows[name]["status_"] == job["status"]
        assert rows[name]["attempt"] == f"{job['attempts_in_budget']}/{job['max_attempts']}"
        assert rows[name]["exit"] == "0"
        assert rows[name]["duration"] == f"{job['duration_seconds']:.1f}s"
    assert "started_by" in truth and truth["started_by"] == "alice"
    assert "by alice" in page.locator("main p.muted").first.inner_text()
    assert page.locator("div.gate").count() == 0
    assert "12 unit tests passed" in open_log(page, "unit")
    # The timeline loads when opened: one row per line of the run file.
    lines = run_lines(site.state, "ok-1")
    page.locator('details[data-key="timeline"] summary').click()
    entries = page.locator("#timeline tr:has(td)")
    expect(entries).to_have_count(len(lines))
    assert entries.first.locator("td").nth(2).inner_text() == "RunStarted"
    assert entries.last.locator("td").nth(2).inner_text() == lines[-1]["event"]
    assert page.locator('details[data-key="timeline"] summary').inner_text() == (
        f"Timeline ({len(lines)} transitions)")
    screenshot(page, "run-succeeded")


def test_a_failed_run_shows_exit_codes_attempts_skip_reasons_and_the_log_tail(
        site: Site, page: Page) -> None:
    truth = status_json(site, "broken-1")
    page.goto(site.server.url + "/runs/broken-1")
    expect(page.locator("#run-state")).to_have_text("failed")
    expected = {"compile": "FAILED", "flaky": "DONE", "unit": "SKIPPED"}
    assert dag_statuses(page) == expected == {n: j["status"] for n, j in jobs_of(truth).items()}
    assert page.locator("svg.dag path.need").count() == expected_arrows(truth) == 1
    assert page.locator('svg.dag g.job[data-job="compile"] rect').get_attribute(
        "fill") != page.locator('svg.dag g.job[data-job="flaky"] rect').get_attribute("fill")
    rows = job_rows(page)
    assert rows["compile"]["exit"] == "3"
    assert "exit code 3" in rows["compile"]["error / reason"]
    assert rows["compile"]["attempt"] == "1/1"
    assert rows["flaky"]["attempt"] == "1/2"  # retry: 1 allows two attempts; one sufficed
    assert rows["unit"]["status_"] == "SKIPPED"
    assert rows["unit"]["exit"] == ""
    skip = jobs_of(truth)["unit"]
    assert skip["reason"] and skip["reason"] in rows["unit"]["error / reason"]
    assert "compile" in rows["unit"]["error / reason"]
    tail = open_log(page, "compile")
    assert "compiling" in tail
    assert "error: missing semicolon" in tail
    screenshot(page, "run-failed")


def test_a_waiting_gate_stands_out_with_the_command_that_releases_it(site: Site,
                                                                     page: Page) -> None:
    # A gate run of its own: this test approves it.
    run_pipeline(site.world.pipelines["release"], site.state, "gate-2", user="carol", code=3)
    page.goto(site.server.url + "/runs/gate-2")
    expect(page.locator("#run-state")).to_have_text("awaiting approval")
    assert dag_statuses(page) == {"compile": "DONE", "release": "WAITING"}
    gate = page.locator('div.gate[data-gate="release"]')
    expect(gate).to_be_visible()
    command = gate.locator("code").inner_text()
    pipeline = site.world.pipelines["release"]
    assert command == (f"pt pipeline approve {pipeline} --state-dir {site.state} "
                       f"--run-id gate-2 --job release")
    # The box of a waiting gate is outlined, unlike the others.
    assert page.locator('g.job[data-job="release"] rect').get_attribute("stroke-width") == "4"
    assert page.locator('g.job[data-job="compile"] rect').get_attribute("stroke-width") == "1"
    screenshot(page, "run-gate")

    # The command shown is the one that works; the page follows without a reload.
    page.evaluate("window.__marker = 'before approval'")
    argv = shlex.split(command)
    assert argv[0] == "pt"
    subprocess.run([PT, *argv[1:], "--as", "dave", "--reason", "looks good"], check=True,
                   cwd=pipeline.parent, env=clean_env(), capture_output=True, timeout=60)
    expect(page.locator('g.job[data-job="release"]')).to_have_attribute(
        "data-status", "APPROVED")
    expect(gate).to_have_count(0)
    expect(page.locator('#jobs tr[data-job="release"]')).to_contain_text(
        "approved by dave (unauthenticated)")
    assert page.evaluate("window.__marker") == "before approval"


def test_the_run_page_updates_by_itself_while_a_job_runs(site: Site, page: Page) -> None:
    pipeline = write_pipeline(site.state.parent, "live", LIVE)
    release = pipeline.parent / "release-me"
    runner = subprocess.Popen(
        [PT, "pipeline", "run", str(pipeline), "--state-dir", str(site.state), "--run-id",
         "live-1"], cwd=pipeline.parent, env=clean_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        run_file = site.state / "pipeline-runs" / "live-1.jsonl"
        wait_until(lambda: run_file.exists() and any(
            line.get("event") == "JobStarted" for line in run_lines(site.state, "live-1")),
            "the job to start")
        page.goto(site.server.url + "/runs/live-1")
        expect(page.locator("#run-state")).to_have_text("running")
        assert dag_statuses(page) == {"wait": "RUNNING", "after": "PENDING"}
        assert page.evaluate("document.body.dataset.refreshed") is None
        page.evaluate("window.__marker = 'set before the update'")
        screenshot(page, "run-live-running")

        release.touch()
        expect(page.locator('g.job[data-job="after"]')).to_have_attribute("data-status", "DONE")
        expect(page.locator("#run-state")).to_have_text("succeeded")
        assert runner.wait(60) == 0, runner.stderr.read() if runner.stderr else ""
    finally:
        release.touch()
        if runner.poll() is None:
            runner.wait(60)
    assert dag_statuses(page) == {"wait": "DONE", "after": "DONE"}
    assert job_rows(page)["wait"]["exit"] == "0"
    # No reload: the marker survived, the document was navigated to once, and the live part
    # says it was refreshed.
    assert page.evaluate("window.__marker") == "set before the update"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("performance.getEntriesByType('navigation')[0].type") == "navigate"
    assert page.evaluate("document.body.dataset.refreshed") is not None
    screenshot(page, "run-live-done")


def test_open_log_tails_and_timeline_stay_open_across_live_updates(site: Site, page: Page) -> None:
    run_pipeline(site.world.pipelines["release"], site.state, "gate-3", user="carol", code=3)
    page.goto(site.server.url + "/runs/gate-3")
    assert "built" in open_log(page, "compile")
    page.locator('details[data-key="timeline"] summary').click()
    expect(page.locator("#timeline tr:has(td)")).to_have_count(
        len(run_lines(site.state, "gate-3")))
    before = page.evaluate("document.body.dataset.refreshed")
    pt_ok("pipeline", "reject", site.world.pipelines["release"], "--state-dir", site.state,
          "--run-id", "gate-3", "--job", "release", "--reason", "not today",
          cwd=site.world.folder)
    expect(page.locator('g.job[data-job="release"]')).to_have_attribute(
        "data-status", "SKIPPED")
    assert page.evaluate("document.body.dataset.refreshed") != before
    details = page.locator('#jobs details[data-key="compile"]')
    expect(details).to_have_attribute("open", "")
    expect(details.locator("pre")).to_contain_text("built")
    # The open timeline was reloaded too, with the rejection in it.
    expect(page.locator("#timeline tr:has(td)")).to_have_count(
        len(run_lines(site.state, "gate-3")))
    expect(page.locator("#timeline")).to_contain_text("JobRejected")


def test_the_runs_page_shows_a_new_run_without_a_reload(site: Site, page: Page) -> None:
    page.goto(site.server.url + "/")
    expect(page.locator("#runs tr[data-run]").first).to_be_visible()
    page.evaluate("window.__marker = 'runs page'")
    run_pipeline(site.world.pipelines["build"], site.state, "ok-2", user="erin", code=0)
    row = page.locator('#runs tr[data-run="ok-2"]')
    expect(row).to_have_attribute("data-outcome", "succeeded")
    expect(row).to_contain_text("erin")
    assert page.evaluate("window.__marker") == "runs page"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


# ---- Migration Health panel --------------------------------------------------------------------


def test_the_health_panel_shows_the_verdict_counters_and_hints_of_pt_health(
        site: Site, page: Page) -> None:
    code, truth = site.health.health(site.health.all_transforms)
    assert (code, truth["verdict"]) == (1, "NO-GO")
    page.goto(site.server.url + "/")
    panel = page.locator("#health")
    expect(panel).to_have_attribute("data-verdict", truth["verdict"])
    expect(page.locator("#verdict")).to_have_text(truth["verdict"])
    assert panel.locator(":scope > ul:not(#hints) > li").all_inner_texts() == truth["reasons"]
    rows = page.locator("#health-tables tr[data-table]")
    expect(rows).to_have_count(len(truth["tables"]))
    for table in truth["tables"]:
        row = page.locator(f'#health-tables tr[data-table="{table["table"]}"]')
        counters = table["counters"]
        assert row.locator("td.written").inner_text() == str(counters["rows_written"])
        assert row.locator("td.deferred").inner_text() == str(counters["deferred"])
        assert row.locator("td.rejected").inner_text() == str(counters["rejected"])
        assert row.locator("td").nth(1).inner_text() == table["verdict"]
        for reason in table["reasons"]:
            assert reason in row.inner_text()
        for kind, status in table["validations"].items():
            assert f"{kind} {status}" in row.inner_text()
    counts = {t["table"]: (t["counters"]["rows_written"], t["counters"]["deferred"],
                           t["counters"]["rejected"], t["verdict"]) for t in truth["tables"]}
    assert counts == {"parents": (5, 0, 0, "GO"), "children": (20, 2, 0, "NO-GO"),
                      "notes": (3, 0, 0, "CAUTION"), "tags": (2, 0, 1, "NO-GO")}
    # Each validation's status is shown as a badge of its own.
    children = page.locator('#health-tables tr[data-table="children"]')
    expect(children.locator(".check.c-INCOMPLETE")).to_have_text("counts INCOMPLETE")
    hints = page.locator("#hints li")
    expect(hints).to_have_count(len(truth["hints"]))
    shown = hints.all_inner_texts()
    for hint, text in zip(truth["hints"], shown, strict=True):
        assert hint["table"] in text
        assert hint["hint"] in text
        assert hint["suggestion"] in text
    assert any("orphans" in text for text in shown)
    panel.scroll_into_view_if_needed()
    screenshot(page, "health")
