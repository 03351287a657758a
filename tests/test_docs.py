"""Documentation that must not drift from the code: settings table, plugin definitions, links.

When you add or change a setting of the tap, these fail and say what to regenerate or
add: `make settings-doc` for README.md, and the setting's entry in meltano.yml and in
hub/extractors/tap-strava--strava-pipeline.yml. README.md is the front door; the rest is
in docs/*.md: every relative link and anchor there must resolve, every page must be linked
from the README, and every path docs/architecture.md names must exist.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from devtools import settings_doc

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
DOC_PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN_FILES = [README, *DOC_PAGES]
HUB_DEFINITION = PROJECT_ROOT / "hub" / "extractors" / "tap-strava--strava-pipeline.yml"
# Settings every SDK tap has (stream maps, flattening, batches): Meltano knows them.
SDK_SETTINGS = {
    "stream_maps",
    "stream_map_config",
    "faker_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
    "batch_config",
}


@pytest.fixture(scope="module")
def about() -> dict[str, t.Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return t.cast("dict[str, t.Any]", json.loads(proc.stdout))


@pytest.fixture(scope="module")
def tap_settings(about: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    properties = about["settings"]["properties"]
    return {name: spec for name, spec in properties.items() if name not in SDK_SETTINGS}


def test_readme_settings_table_is_generated_from_about():
    readme = settings_doc.README.read_text(encoding="utf-8")
    assert settings_doc.current_table(readme) == settings_doc.generated_table(), (
        "README.md's settings table differs from `tap-strava --about --format=markdown`: "
        "run `make settings-doc` (python -m devtools.settings_doc) and commit README.md"
    )


def test_settings_doc_replaces_only_the_table():
    text = "# T\n\n## Settings\n\nintro\n\n<!-- settings-table: x -->\n\n| old |\n\n## Next\nrest\n"
    about = "# `tap`\n\n## Settings\n\n| new |\n|:--|\n\nA line.\n\n## Other\n"
    rendered = settings_doc.render(text, settings_doc.generated_table(about))
    assert rendered == (
        "# T\n\n## Settings\n\nintro\n\n<!-- settings-table: x -->\n\n| new |\n|:--|\n\n"
        "A line.\n\n## Next\nrest\n"
    )


def _plugin_settings(definition: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    return {setting["name"]: setting for setting in definition["settings"]}


def _check_definition(where: str, definition: dict[str, t.Any], tap_settings: dict) -> None:
    declared = _plugin_settings(definition)
    missing = sorted(set(tap_settings) - set(declared))
    extra = sorted(set(declared) - set(tap_settings))
    assert not missing, f"{where} lacks settings of the tap: {missing}"
    assert not extra, f"{where} declares settings the tap does not have: {extra}"
    for name, spec in tap_settings.items():
        secret = bool(spec.get("secret")) or bool(spec.get("writeOnly"))
        assert bool(declared[name].get("sensitive")) == secret, f"{where}: {name} sensitive"
    assert definition["executable"] == "tap-strava"
    assert definition["commands"]["authorize"]["executable"] == "tap-strava-auth"


def test_meltano_yml_declares_every_tap_setting(tap_settings):
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-strava"]
    _check_definition("meltano.yml", tap, tap_settings)


def test_hub_definition_matches_the_tap(tap_settings, about):
    definition = yaml.safe_load(HUB_DEFINITION.read_text(encoding="utf-8"))
    _check_definition(HUB_DEFINITION.name, definition, tap_settings)
    assert definition["name"] == "tap-strava"
    # Hub already lists tap-strava variants airbyte, briansloane and dluftspring.
    assert definition["variant"] not in {"airbyte", "briansloane", "dluftspring"}
    assert HUB_DEFINITION.name == f"tap-strava--{definition['variant']}.yml"
    # Never the package index's unrelated `tap-strava`: a git URL pinned to a release.
    assert definition["pip_url"].startswith("git+https://")
    # The tap's own distribution alone: its folder of the repository, not the pipeline.
    url, _, fragment = definition["pip_url"].partition("#")
    assert url.endswith(f"@v{about['version']}")
    assert fragment == "subdirectory=packages/tap-strava"
    assert set(definition["capabilities"]) <= set(about["capabilities"])
    for name, spec in tap_settings.items():
        if spec.get("default") is not None and name != "token_store_path":
            assert _plugin_settings(definition)[name].get("value") == spec["default"], name


def test_project_hygiene_files():
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    version = _pyproject()["project"]["version"]
    assert f"## [{version}]" in changelog
    assert "## Versions and schema changes" in changelog
    assert "MIT License" in (PROJECT_ROOT / "LICENSE").read_text(encoding="utf-8")
    hooks = yaml.safe_load((PROJECT_ROOT / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy"} <= ids
    assert _pyproject()["project"]["requires-python"] == ">=3.10"


def _pyproject() -> dict[str, t.Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    tap_project = PROJECT_ROOT / "packages" / "tap-strava" / "pyproject.toml"
    return tomllib.loads(tap_project.read_text(encoding="utf-8"))


def test_every_make_target_the_docs_name_exists():
    """Issue 13.8: a meltano.yml comment sent users to `make analytics`, which never existed."""
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for path in (*MARKDOWN_FILES, PROJECT_ROOT / "meltano.yml"):
        text = path.read_text(encoding="utf-8")
        named = set(re.findall(r"`make ([a-z][a-z-]*)|\bmake ([a-z][a-z-]*)", text))
        missing = sorted({a or b for a, b in named} - targets)
        name = path.relative_to(PROJECT_ROOT)
        assert not missing, f"{name} names make targets the Makefile lacks: {missing}"


def test_the_simulator_page_documents_the_fault_interface():
    """Issue 13.8: `/_sim/faults` and its kinds were documented only in the code."""
    from strava_simulator.faults import KINDS

    section = (DOCS / "simulator.md").read_text(encoding="utf-8")
    assert "/_sim/faults" in section
    for kind in KINDS:
        assert f"`{kind}`" in section, kind
    for field in ("path_pattern", "count", "status", "delay"):
        assert f"`{field}`" in section or f'"{field}"' in section, field


# -- Links between the README and docs/ --------------------------------------------------

FENCED_CODE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), an optional "title" after the target.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def links(text: str) -> list[str]:
    """Link targets in Markdown prose (code blocks and code spans are not links)."""
    prose = INLINE_CODE.sub("", FENCED_CODE.sub("", text))
    return LINK.findall(prose)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", FENCED_CODE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(page: Path) -> list[str]:
    """Every relative link of ``page`` whose file, or heading, does not exist."""
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in heading_anchors(linked.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def test_the_link_checker_sees_links_anchors_and_code():
    """The checker itself: a link in code is no link, anchors follow GitHub's rule."""
    text = (
        "# Strava's 2027 `API` change\n\n## Past runs, and the bookmark\n\n## Past runs, and the "
        "bookmark\n\n[a](b.md#x) ![pic](p.png) `[no](c.md)` <https://x.y>\n\n"
        "```sh\n[no](d.md)\n# not a heading\n```\n"
    )
    assert links(text) == ["b.md#x", "p.png"]
    assert heading_anchors(text) == {
        "stravas-2027-api-change",
        "past-runs-and-the-bookmark",
        "past-runs-and-the-bookmark-1",
    }


@pytest.mark.parametrize("page", MARKDOWN_FILES, ids=lambda p: p.relative_to(PROJECT_ROOT).name)
def test_every_relative_link_resolves(page):
    """A moved section leaves no link behind: files exist, anchors name a real heading."""
    assert not broken_links(page), f"{page.relative_to(PROJECT_ROOT)}: {broken_links(page)}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(README.read_text(encoding="utf-8"))
        if not EXTERNAL.match(target) and target.partition("#")[0]
    }
    unlinked = [page.name for page in DOC_PAGES if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


def test_the_cron_lines_are_only_in_the_readme():
    """The e2e tests run the README's cron lines; a copy elsewhere would drift untested."""
    assert "```cron" in README.read_text(encoding="utf-8")
    for page in DOC_PAGES:
        assert "```cron" not in page.read_text(encoding="utf-8"), (
            f"{page.name} has cron lines: keep them in the README (tests/test_notify_e2e.py)"
        )


# -- docs/architecture.md ----------------------------------------------------------------

# A path in code spans: folders end in "/", modules in ".py" (run-time files are not named
# this way: they do not exist in a fresh clone).
NAMED_PATH = re.compile(r"`((?:[\w.-]+/)+(?:[\w.-]+\.py)?)`")
# Packages whose every module docs/architecture.md must name (the simulator's are summed up).
DESCRIBED_PACKAGES = (
    "packages/tap-strava/tap_strava",
    "packages/strava-pipeline/strava_notify",
    "packages/strava-pipeline/strava_spool",
)


def test_every_path_the_architecture_page_names_exists():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    named = NAMED_PATH.findall(text)
    assert len(named) > 40, named
    missing = sorted(name for name in set(named) if not (PROJECT_ROOT / name).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_architecture_page_names_every_module():
    named = set(NAMED_PATH.findall((DOCS / "architecture.md").read_text(encoding="utf-8")))
    modules = [
        path.relative_to(PROJECT_ROOT).as_posix()
        for package in DESCRIBED_PACKAGES
        for path in sorted((PROJECT_ROOT / package).glob("*.py"))
        if path.name not in {"__init__.py", "__main__.py"}
    ]
    assert modules
    unnamed = [module for module in modules if module not in named]
    assert not unnamed, f"docs/architecture.md does not say what these modules own: {unnamed}"


def test_the_schedules_and_the_readme_cron_lines_agree():
    """`meltano schedule list` and the README's cron lines run each job at the same times."""
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text(encoding="utf-8"))
    scheduled = {s["job"]: s["interval"] for s in project["schedules"]}
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    cron: dict[str, str] = {}
    for block in re.findall(r"```cron\n(.*?)```", readme, re.DOTALL):
        for line in block.splitlines():
            if "strava-job" not in line:
                continue
            job = re.search(r"--job (\S+)", line)
            cron[job.group(1) if job else "strava-daily"] = " ".join(line.split()[:5])
    assert cron == scheduled
