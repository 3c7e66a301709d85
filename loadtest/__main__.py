"""``python -m loadtest``: the crowd simulator (to come)."""

from __future__ import annotations

import sys


def main() -> int:
    print("the load tester is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
