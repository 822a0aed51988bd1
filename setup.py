"""One import package, `cotenant`, whose subpackages live in the repository's top-level folders.

A top-level import package named `datasets` would shadow Hugging Face's, so the folders keep the design's
names while Python sees `cotenant.datasets`, `cotenant.models`, ...  Subpackages are discovered from the
folders so adding one needs no edit here.
"""

from pathlib import Path

from setuptools import setup

PACKAGE_DIRS = {
    "cotenant": "cotenant",
    "cotenant.collectors": "collectors",
    "cotenant.datasets": "datasets",
    "cotenant.models": "models",
    "cotenant.training": "training",
    "cotenant.serving": "serving",
    "cotenant.planning": "planning",
}


def discover_packages() -> list[str]:
    packages = []
    for package, folder in PACKAGE_DIRS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            relative = init.parent.relative_to(folder)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            packages.append(".".join([package, *relative.parts]))
    return packages


setup(packages=discover_packages(), package_dir=PACKAGE_DIRS)
