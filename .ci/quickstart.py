"""Print the README's quick-start commands, one per line, exactly as a newcomer copies them.

`.ci/run` runs what this prints on a clean clone, and tests/test_readme.py checks the block's
shape, so the README and CI cannot drift apart.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path


def commands(readme: str) -> list[str]:
    """The lines of the first ```bash block under the '## Quick start' heading."""
    section = readme.split("\n## Quick start\n", 1)
    if len(section) != 2:
        raise SystemExit("README.md has no '## Quick start' section")
    block = re.search(r"```bash\n(.*?)```", section[1].split("\n## ", 1)[0], re.S)
    if block is None:
        raise SystemExit("README.md's quick start has no ```bash block")
    return [line for line in block.group(1).splitlines() if line.strip()]


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(commands((root / "README.md").read_text(encoding="utf-8"))))
    sys.exit(0)
