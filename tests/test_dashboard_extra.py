"""The dashboard without its extra, and the polyline decoder (no extra needed for either).

The command is run as a user without ``strava-pipeline[dashboard]`` would run it: a
Python whose site-packages lacks matplotlib, numpy, Pillow and duckdb. Not a finder that
fakes an import error: the interpreter starts with ``-I -S`` (no site-packages at all,
nothing from the environment), then gets a folder of symbolic links to every entry of
this environment's site-packages except those distributions, added with
``site.addsitedir`` (so the editable installs' ``.pth`` files work as usual), and runs
the installed ``tap-strava-dashboard`` script.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from strava_dashboard import polyline
from strava_simulator.geo import encode_polyline

SCRIPT = Path(sys.executable).with_name("tap-strava-dashboard")
#: Top-level names of what the extra brings (the packages and their compiled libraries).
HIDDEN = ("matplotlib", "mpl_toolkits", "numpy", "pil", "pillow", "duckdb", "contourpy")
BOOT = """
import runpy, site, sys
site.addsitedir(sys.argv[1])
sys.argv = ["tap-strava-dashboard", *sys.argv[2:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def _site_without(tmp_path: Path, hidden: tuple[str, ...]) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    shadow = tmp_path / "site-packages"
    shadow.mkdir()
    for entry in site.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top in hidden:
            continue
        (shadow / entry.name).symlink_to(entry)
    return shadow


def _run(shadow: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOT.format(script=str(SCRIPT)), str(shadow), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not SCRIPT.exists(), reason="tap-strava-dashboard is not installed")
def test_without_the_extra_the_command_names_the_cause_and_the_fix_in_one_line(tmp_path):
    url = "postgresql://nobody@127.0.0.1:1/none"
    shadow = _site_without(tmp_path, HIDDEN)
    proc = _run(shadow, "--database-url", url, "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "tap-strava-dashboard: error: the dashboard extra is not installed (no module named "
        "'matplotlib'): pip install 'strava-pipeline[dashboard]' (in this repository: make "
        "setup-extras)"
    ]
    assert not (tmp_path / "r.html").exists()
    # The folder really lacks matplotlib, and --help needs none of the extra.
    code = (
        f"import site; site.addsitedir({str(shadow)!r}); import importlib.util as u; "
        "print(u.find_spec('matplotlib'), u.find_spec('psycopg') is not None)"
    )
    probe = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.stdout.split() == ["None", "True"], probe.stderr
    helped = _run(shadow, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--privacy-zone" in helped.stdout


@pytest.mark.skipif(not SCRIPT.exists(), reason="tap-strava-dashboard is not installed")
def test_the_same_trick_with_the_extra_present_gets_past_the_check(tmp_path):
    pytest.importorskip("matplotlib", reason="the dashboard extra is not installed here")
    shadow = _site_without(tmp_path, ())
    proc = _run(shadow, "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith("tap-strava-dashboard: error: cannot read the tables"), line


def test_polylines_decode_as_google_documents_them():
    # The example of Google's "Encoded Polyline Algorithm Format" page.
    assert polyline.decode("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == [
        (38.5, -120.2),
        (40.7, -120.95),
        (43.252, -126.453),
    ]
    assert polyline.decode("") == []
    track = [(52.0 + i * 1.3e-4, 4.0 - i * 2.1e-4) for i in range(500)]
    rounded = [(round(a, 5), round(b, 5)) for a, b in track]
    decoded = polyline.decode(encode_polyline(track))
    assert len(decoded) == len(rounded)
    for (a, b), (c, d) in zip(decoded, rounded, strict=True):
        assert abs(a - c) < 1.1e-5
        assert abs(b - d) < 1.1e-5
    with pytest.raises(polyline.PolylineError, match="ends inside"):
        polyline.decode("_p~iF~ps|U_ulL")
    with pytest.raises(polyline.PolylineError, match="character"):
        polyline.decode("_p~iF ps|U")
