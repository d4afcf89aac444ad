"""Packaging: every Python package, plus templates/ and config/ shipped inside `listmgr`."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["listmgr", "listmgr.*", "workers", "workers.*"])
    + ["listmgr.templates", "listmgr.config"],
    package_dir={"listmgr.templates": "templates", "listmgr.config": "config"},
)
