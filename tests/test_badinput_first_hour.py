"""Issue 17, a newcomer's first hour: the clone imports from its own root,
the README defines its words and lists every metric, and tox lists every
environment with a description. (`pytest --tlbperf` in an empty folder is in
test_badinput_plugin.py.)"""

import configparser
import re
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_tlbperf.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(),
                                reason="needs the source tree")


def test_the_clone_imports_from_its_root_without_an_editable_install():
    """`pip install .` then `python -c "import pytest_tlbperf"` in the clone:
    the clone's folder came first on sys.path, lacked policies/, suites/ and
    reports/, and the import died half way ("circular import"). Here: the
    clone first, the installed dependencies after it, and no .pth file run
    (so no editable finder) -- what a regular install sees."""
    code = textwrap.dedent(f'''
        import sys
        sys.path[:0] = [""]
        sys.path += {site.getsitepackages()!r}
        import pytest_tlbperf as tp
        import pytest_tlbperf.reports.report, pytest_tlbperf.suites
        assert tp.__file__.startswith({str(ROOT)!r}), tp.__file__
        print(len(tp.policies.names()), pytest_tlbperf.suites.__file__)
    ''')
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, suites = out.stdout.split()
    assert int(count) >= 10 and suites == str(ROOT / "suites" / "__init__.py")


def test_an_installed_copy_maps_nothing(tmp_path):
    from pytest_tlbperf import _source_tree
    pkg = tmp_path / "pytest_tlbperf"
    for sub in _source_tree.FOLDERS:
        (pkg / sub).mkdir(parents=True)
    before = list(sys.meta_path)
    _source_tree.map_source_folders("pytest_tlbperf", str(pkg / "__init__.py"))
    assert sys.meta_path == before


@pytest.fixture(scope="module")
def readme():
    return (ROOT / "README.md").read_text()


def test_the_readme_defines_the_seed_messages(readme):
    for n in range(5):
        assert re.search(rf"^\| seed 00{n} \| \w+ \w+, \d+ \w+ 20\d\d, ", readme, re.M), n
    assert not re.search(r"\bissue \d+|DESIGN|§", readme)


def test_the_readme_lists_every_metric(readme):
    metrics = readme.split("### Oracle and metrics")[1].split("\n## ")[0]
    for name in METRICS:
        assert f"`{name}`" in metrics, name


def test_tox_lists_every_environment_with_a_description():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    envs = ["py311"] + [s.split(":", 1)[1] for s in ini.sections() if s.startswith("testenv:")]
    listed = [e.strip() for e in ini["tox"]["envlist"].split(",")]
    assert listed == envs
    for section in ["testenv"] + [f"testenv:{e}" for e in envs[1:]]:
        assert ini[section].get("description"), section
