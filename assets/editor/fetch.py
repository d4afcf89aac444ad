"""Install the visual editor's pinned npm packages (package-lock.json) and copy the files the
composer loads, with their licences, into listmgr/static/vendor/ (not kept in git).

setup.py runs this when the files are missing, so a checkout, an editable install and a wheel
all serve the editor from the app itself. Needs npm; run it again after changing the pins.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent.parent / "listmgr" / "static" / "vendor"
# package -> (folder under static/vendor, files to copy from the package)
FILES = {
    "squire-rte": ("squire", ["dist/squire.js", "LICENSE"]),
    "dompurify": ("dompurify", ["dist/purify.min.js", "LICENSE"]),
}


def main() -> int:
    npm = shutil.which("npm")
    if npm is None:
        print(
            "fetch.py: npm is needed to fetch the visual editor (apt-get install npm)",
            file=sys.stderr,
        )
        return 1
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=optional"],
        cwd=HERE,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for package, (folder, names) in FILES.items():
        out = TARGET / folder
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for name in names:
            shutil.copyfile(HERE / "node_modules" / package / name, out / Path(name).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
