"""`make demo`'s report (issue 13.8): UTC next to the UTC bookmark, gear, how to look later."""

from __future__ import annotations

import re

import pytest

from devtools import demo

pytestmark = pytest.mark.e2e


def test_the_report_speaks_utc_counts_gear_and_says_how_to_look_at_the_tables(
    meltano_project, capsys, monkeypatch
):
    for variable in ("TARGET_POSTGRES_SQLALCHEMY_URL", "TARGET_POSTGRES_HOST"):
        monkeypatch.delenv(variable, raising=False)  # the embedded server's case
    meltano_project.run("strava-daily", run_stamp="demo")
    demo.report(
        meltano_project.postgres_url,
        meltano_project.output_root / "demo",
        meltano_project.env(),
        schema=meltano_project.schema,
    )
    demo.keep_or_explain("postgresql+psycopg://postgres@/postgres?host=/x", keep=False)
    out = capsys.readouterr().out
    assert re.search(rf"{meltano_project.schema}\.gear +\d+ rows", out), out
    newest = max(meltano_project.sim.activities, key=lambda a: a["start_date"])
    shown = newest["start_date"][:16].replace("T", " ") + " UTC (local "
    assert shown in out, out
    (bookmark,) = re.findall(r"Bookmark \(.*UTC\): (\S+)", out)
    assert bookmark == newest["start_date"]
    assert "--keep" in out
    assert "psql" in out
