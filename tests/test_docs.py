"""Documentation that must not drift from the code: settings table, plugin definitions.

When you add or change a setting of the tap, these fail and say what to regenerate or
add: `make settings-doc` for README.md, and the setting's entry in meltano.yml and in
hub/extractors/tap-strava--strava-pipeline.yml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from devtools import settings_doc

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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
    assert definition["pip_url"].endswith(f"@v{about['version']}")
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
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_make_target_the_docs_name_exists():
    """Issue 13.8: a meltano.yml comment sent users to `make analytics`, which never existed."""
    import re

    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    for name in ("README.md", "meltano.yml"):
        text = (PROJECT_ROOT / name).read_text(encoding="utf-8")
        named = set(re.findall(r"`make ([a-z][a-z-]*)|\bmake ([a-z][a-z-]*)", text))
        missing = sorted({a or b for a, b in named} - targets)
        assert not missing, f"{name} names make targets the Makefile lacks: {missing}"


def test_the_readme_documents_the_simulators_fault_interface():
    """Issue 13.8: `/_sim/faults` and its kinds were documented only in the code."""
    from tap_strava.simulator.faults import KINDS

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The Strava simulator") : readme.index("## Troubleshooting")]
    assert "/_sim/faults" in section
    for kind in KINDS:
        assert f"`{kind}`" in section, kind
    for field in ("path_pattern", "count", "status", "delay"):
        assert f"`{field}`" in section or f'"{field}"' in section, field
