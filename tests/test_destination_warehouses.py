"""Snowflake and BigQuery: unreachable from here, so only what can be checked offline.

The pinned plugins install and run (``--about``), every setting meltano.yml declares is
one the plugin knows, the plugin's secrets are marked sensitive, and the configuration
Meltano resolves (with placeholder credentials) passes the plugin's own settings schema.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.pipeline import PROJECT_ROOT

pytestmark = pytest.mark.extras

#: Placeholders for the settings a user must give (no real account is reachable).
PLACEHOLDERS = {
    "target-snowflake": {
        "TARGET_SNOWFLAKE_ACCOUNT": "myorg-myaccount",
        "TARGET_SNOWFLAKE_USER": "LOADER",
        "TARGET_SNOWFLAKE_PASSWORD": "placeholder",
        "TARGET_SNOWFLAKE_WAREHOUSE": "LOADING",
        "TARGET_SNOWFLAKE_ROLE": "LOADER",
    },
    "target-bigquery": {
        "TARGET_BIGQUERY_PROJECT": "my-gcp-project",
        "TARGET_BIGQUERY_CREDENTIALS_PATH": "/secrets/bigquery-loader.json",
    },
}
MUST_BE_SENSITIVE = {
    "target-snowflake": {"password", "private_key", "private_key_passphrase"},
    "target-bigquery": {"credentials_json"},
}


def _declared(plugin: str) -> dict:
    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == plugin]
    return loader


@pytest.mark.parametrize("plugin", sorted(PLACEHOLDERS))
def test_the_warehouse_loader_installs_and_its_configuration_is_valid(plugin, destination_project):
    about = destination_project.meltano("invoke", plugin, "--about", "--format=json")
    assert about.returncode == 0, about.stderr[-2000:]
    schema = json.loads(about.stdout)["settings"]
    known = schema["properties"]

    declared = _declared(plugin)
    names = {s["name"] for s in declared["settings"]}
    assert names <= set(known), f"settings the plugin does not know: {names - set(known)}"
    assert set(schema.get("required", [])) <= names, "a required setting is not declared"
    sensitive = {s["name"] for s in declared["settings"] if s.get("sensitive")}
    secrets = {name for name in names if known[name].get("secret")}
    assert secrets | MUST_BE_SENSITIVE[plugin] <= sensitive

    listed = destination_project.meltano("config", "list", plugin)
    assert listed.returncode == 0, listed.stderr[-2000:]

    # With no input the plugin validates its configuration (its own validator: the
    # BigQuery plugin's settings schema is not even valid JSON Schema for `jsonschema`)
    # and exits without connecting anywhere.
    checked = destination_project.meltano("invoke", plugin, input="", **PLACEHOLDERS[plugin])
    assert checked.returncode == 0, checked.stderr[-2000:]
    prefix = plugin.upper().replace("-", "_")
    required = next(
        n for n in sorted(schema["required"]) if f"{prefix}_{n.upper()}" in PLACEHOLDERS[plugin]
    )
    incomplete = dict(PLACEHOLDERS[plugin])
    del incomplete[f"{prefix}_{required.upper()}"]
    refused = destination_project.meltano("invoke", plugin, input="", **incomplete)
    assert refused.returncode != 0
    assert f"'{required}' is a required property" in refused.stderr
