"""The smoke run's Snakemake report in headless Chromium (marker `browser`; `make test-browser`, run by `.ci/run`).

The fixture installs Debian's chromium with apt-get when it is absent and the user is root (else it skips with
the reason), copies the workflow to a temporary folder and runs the smoke workflow there: the repository's
smoke outputs are reused when `make run` has made them (then only the captions job runs, seconds), otherwise
every smoke job runs (minutes). `snakemake --report` builds report.html there. Chromium loads the report as it
is, for a screenshot of the first page (kept in logs/test_browser/) and its menu, and with
tests/report_views.js appended, which shows every subcategory and result through the report's own app and
writes what each view rendered into the DOM. The expected tables and figures are the run's CSVs and PDFs
that the workflow lists (`snakemake --summary`); their sections and captions come from the captions registry.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from ddubench.report import captions

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
RUN = "smoke"
ARTEFACTS = REPO / "logs" / "test_browser"
VIEWS_SCRIPT = Path(__file__).with_name("report_views.js")
ABSENT = "scaling_cuda"  # registered caption of a CUDA run; the smoke run measures on the CPU

pytestmark = pytest.mark.browser


def _chromium_or_skip() -> str:
    """The chromium executable; Debian's package is installed with apt-get when it is missing (root only)."""
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed; installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
    if result.returncode or not shutil.which("chromium"):
        pytest.skip(f"apt-get install chromium failed: {(result.stderr.strip() or 'no output')[-200:]}")
    return shutil.which("chromium")


def _snakemake(work: Path, *args: str, timeout: int = 120) -> str:
    """Run Snakemake in ``work``; its standard output."""
    result = subprocess.run([SNAKEMAKE, *args], cwd=work, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def _workflow_copy(work: Path) -> Path:
    """The workflow in ``work``, with the repository's smoke outputs (mtimes kept) but not their captions."""
    for name in ("Snakefile", "workflow", "config", "profiles"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / name)
    for outputs in (f"results/{RUN}", f"figures/{RUN}"):
        if (REPO / outputs).is_dir():
            shutil.copytree(REPO / outputs, work / outputs, ignore=shutil.ignore_patterns("captions"))
    return work


def _expected(work: Path) -> set[str]:
    """The run's tables and figures as the workflow lists them: every results/<run>/*.csv, figures/<run>/*.pdf."""
    listed = (line.split("\t", 1)[0] for line in _snakemake(work, "--summary").splitlines())
    return {path for path in listed if re.fullmatch(rf"(results/{RUN}/[^/]+\.csv|figures/{RUN}/[^/]+\.pdf)", path)}


def _chromium(browser: str, page: Path, profile: Path, *args: str) -> str:
    """Load ``page`` in headless Chromium (60 s of virtual time for its scripts); its standard output."""
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    command = [browser, "--headless", "--disable-gpu", *sandbox, f"--user-data-dir={profile}",
               "--window-size=1400,900", "--virtual-time-budget=60000", *args, page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _NavText(HTMLParser):
    """The text inside the report's navigation bar (not the data the report embeds in scripts)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "nav":
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def _nav_text(dom: str) -> str:
    """The text of the navigation bar of a dumped DOM."""
    parser = _NavText()
    parser.feed(dom)
    return " ".join(parser.parts)


def _views(browser: str, report: Path, profile: Path) -> list[dict]:
    """What tests/report_views.js found in every view of the report's app (read back from the dumped DOM)."""
    page = report.read_text()
    end = page.rindex("</body>")
    driven = report.with_name("report_views.html")
    driven.write_text(f"{page[:end]}<script>{VIEWS_SCRIPT.read_text()}</script>{page[end:]}")
    found = re.search(r'<pre id="ddubench-views">(.*?)</pre>', _chromium(browser, driven, profile, "--dump-dom"),
                      re.DOTALL)
    assert found, "tests/report_views.js wrote no views: the report's app did not render"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The smoke report loaded in Chromium: the expected items, the first page and every view of the app."""
    browser = _chromium_or_skip()
    work = _workflow_copy(tmp_path_factory.mktemp("report"))
    start = time.monotonic()
    _snakemake(work, "--cores", "2", timeout=3600)
    _snakemake(work, "--report", "report.html")
    print(f"smoke outputs and report built in {time.monotonic() - start:.0f} s")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "report_first_page.png"
    screenshot.unlink(missing_ok=True)
    first_page = _chromium(browser, work / "report.html", work / "profile", "--dump-dom")
    _chromium(browser, work / "report.html", work / "profile", f"--screenshot={screenshot}")
    return {"work": work, "expected": _expected(work), "first_page": first_page, "screenshot": screenshot,
            "views": _views(browser, work / "report.html", work / "profile")}


def _squashed(rows: list[list[str]]) -> list[list[str]]:
    """Table cells with their runs of white space as one space (as a browser lays them out)."""
    return [[" ".join(cell.split()) for cell in row] for row in rows]


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return _squashed(list(csv.reader(handle)))


def _caption_table(view: dict) -> str:
    """The table a view's caption is about: `<paper item> (<table>). The paper shows ...`."""
    found = re.match(rf"{re.escape(view['subcategory'])} \((\w+)\)\. The paper shows ", view["caption"])
    assert found, f"{view['path']}: caption does not start with its paper item: {view['caption'][:120]!r}"
    return found.group(1)


def test_first_page_renders_the_menu_of_every_section(report: dict) -> None:
    sections = {captions.item(Path(path).stem)[0] for path in report["expected"] if path.endswith(".csv")}
    missing = sorted(section for section in sections if section not in _nav_text(report["first_page"]))
    assert sections and not missing, f"sections not in the first page's menu: {missing}"
    image = Image.open(report["screenshot"]).convert("RGB")
    assert image.size == (1400, 900) and len(image.getcolors(maxcolors=image.width * image.height)) > 16


def test_every_table_and_figure_of_the_run_is_in_the_report(report: dict) -> None:
    expected, views = report["expected"], {view["path"]: view for view in report["views"]}
    tables = {Path(path).stem for path in expected if path.endswith(".csv")}
    assert len(tables) >= 20 and len(expected) - len(tables) >= 10  # the smoke run's 25 tables and 13 figures
    missing, extra = sorted(expected - set(views)), sorted(set(views) - expected)
    assert not missing and not extra, f"not in the report: {missing}; not the run's tables or figures: {extra}"
    for path, view in views.items():
        table = _caption_table(view)
        assert table in tables and captions.item(table)[:2] == (view["category"], view["subcategory"]), path
        assert path in view["listed"], f"{path}: not listed in its subcategory"
        assert view["errors"] == 0, f"{path}: {view['errors']} docutils errors in its caption"
        assert len(view["tables"]) == 1, f"{path}: {len(view['tables'])} tables in its caption"
        assert _squashed(view["tables"][0]) == _csv_rows(report["work"] / f"results/{RUN}/{table}.csv"), path
        if path.endswith(".csv"):
            assert table == Path(path).stem and view["href"].startswith("data:text/csv"), path
            assert view["download"] == Path(path).name, path
        else:
            assert view["href"] == "#" and view["shown"].startswith("data:application/pdf"), path


def test_a_caption_of_another_run_kind_is_not_in_the_report(report: dict) -> None:
    assert ABSENT in captions.ITEMS and f"results/{RUN}/{ABSENT}.csv" not in report["expected"]
    assert not [view["path"] for view in report["views"] if ABSENT in view["path"] or ABSENT in view["caption"]]
