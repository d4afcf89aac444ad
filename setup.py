"""Packaging: listmgr's code, plus every runtime file (templates, config, static, migrations).

The top-level templates/ and config/ folders are mapped into the package, so a checkout runs
from them and a wheel carries them as listmgr/templates and listmgr/config. Each folder of
files is listed as a (namespace) package of its own, so that setuptools ships its files as
package data without warnings.
"""
import subprocess
import sys
from pathlib import Path

from setuptools import find_namespace_packages, setup

# The composer's visual editor comes from npm (pinned in assets/editor/package-lock.json) and is
# copied into listmgr/static/vendor/ before the packages are listed, so that it ships too.
EDITOR = Path(__file__).resolve().parent / "assets" / "editor"
VENDORED = EDITOR.parent.parent / "listmgr" / "static" / "vendor" / "squire" / "squire.js"
# Without npm (or offline) listmgr installs all the same; its composer then offers HTML and
# Markdown only. CI's wheel always has the editor (.ci/wheel-check).
if not VENDORED.is_file() and subprocess.run([sys.executable, str(EDITOR / "fetch.py")]).returncode:
    print("warning: the visual editor was not fetched; the composer offers HTML and Markdown only",
          file=sys.stderr)

# Folders outside listmgr/ that ship inside it: package name -> folder in the checkout.
MAPPED = {"listmgr.templates": "templates", "listmgr.config": "config"}


def packages() -> list[str]:
    """listmgr, its sub-packages and data folders, and the mapped folders with theirs."""
    found = find_namespace_packages(include=["listmgr", "listmgr.*"],
                                    exclude=["*.__pycache__", "*.__pycache__.*"])
    for name, folder in MAPPED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_namespace_packages(
            where=folder, exclude=["__pycache__", "*.__pycache__", "*.__pycache__.*"])]
    return found


PACKAGES = packages()
# Every file in a data folder ships; in code folders, only the non-Python files named here.
DATA = {name: ["*"] for name in PACKAGES if name.startswith(("listmgr.templates",
                                                              "listmgr.config",
                                                              "listmgr.static"))}
DATA["listmgr.migrations"] = ["*.mako", "*.ini"]

setup(packages=PACKAGES, package_dir=MAPPED, package_data=DATA)
