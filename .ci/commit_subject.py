"""pre-commit's commit-msg hook: a commit subject of at most 72 characters (a body says the rest)."""

from __future__ import annotations

import sys

LIMIT = 72


def main(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        subject = next((line.rstrip("\n") for line in handle if line.strip() and not line.startswith("#")), "")
    if len(subject) > LIMIT:
        print(f"commit subject is {len(subject)} characters: at most {LIMIT}; say the rest in the body")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
