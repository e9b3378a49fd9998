"""Make a clone's source tree the same package as the installed one.

In a clone, `policies/`, `suites/` and `reports/` sit beside this folder,
not in it (DESIGN 2): `[tool.setuptools.package-dir]` maps them into the
`pytest_tlbperf` namespace when the package is installed. Wherever the
clone's root comes first on sys.path -- `python -c` or `python -m pytest`
run in the clone -- Python imports this folder rather than the installed
package, and without those three it failed half way through its own
`__init__` ("cannot import name 'policies' from partially initialized
module ... (most likely due to a circular import)"). An editable install
maps them with its own finder; a regular one does not.

`map_source_folders()` maps them the same way here, when -- and only when
-- this folder is a clone's `pytest_tlbperf/` whose `pyproject.toml` is
pytest-tlbperf's, so the clone imports as one whole package from anywhere.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

FOLDERS = ("policies", "suites", "reports")


class _SourceFolders(importlib.abc.MetaPathFinder):
    def __init__(self, folders: dict):
        self.folders = folders

    def find_spec(self, fullname, path=None, target=None):
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])


def map_source_folders(package: str, init_file: str) -> None:
    here = Path(init_file).resolve().parent
    if all((here / sub).is_dir() for sub in FOLDERS):
        return                          # an installed copy: they are inside
    root = here.parent
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return
    if 'name = "pytest-tlbperf"' not in pyproject:
        return
    folders = {f"{package}.{sub}": root / sub for sub in FOLDERS
               if not (here / sub).is_dir() and (root / sub / "__init__.py").is_file()}
    if folders and not any(isinstance(f, _SourceFolders) for f in sys.meta_path):
        sys.meta_path.append(_SourceFolders(folders))
