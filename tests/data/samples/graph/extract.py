"""Cut the published JSON response bodies out of the Microsoft Graph page excerpts, byte for byte.

Input: the *.page-tail.md files (verbatim ends of the published pages, see SOURCE.md).
Output (committed): one .json file per published response body, exactly as published, trailing
commas included: a strict JSON parser rejects some of them, and that is the point of keeping them.
Run from the repository root:

    .venv/bin/python tests/data/samples/graph/extract.py          # writes the files
    .venv/bin/python tests/data/samples/graph/extract.py --check  # exit 1 if a file differs

A body is the text of a fenced block from its first line that starts with "{" to its last line
that starts with "}", plus a final newline: the HTTP status and header lines before it (in the
"```http" blocks) are not part of the body. Standard library only.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# page excerpt -> names of its response bodies, in page order (the request blocks hold no "{")
PAGES = {
    "provisioningobjectsummary-list.v1.0.page-tail.md": [
        "provisioningobjectsummary-list.v1.0.example-1-success.json",
        "provisioningobjectsummary-list.v1.0.example-2-error.json",
    ],
    "provisioningobjectsummary-list.beta-2019.page-tail.md": [
        "provisioningobjectsummary-list.beta-2019.example-1-success.json",
        "provisioningobjectsummary-list.beta-2019.example-2-error.json",
    ],
    "synchronization-synchronizationjob-get.beta.page-tail.md": ["synchronizationjob-get.paused.json"],
    "synchronization_job.beta-2017.page-tail.md": ["synchronizationjob.quarantine.json"],
}


def bodies(markdown: str) -> list[str]:
    found = []
    lines = markdown.split("\n")
    index = 0
    while index < len(lines):
        if lines[index].startswith("```") and lines[index] != "```":
            end = lines.index("```", index + 1)
            block = lines[index + 1 : end]
            starts = [i for i, line in enumerate(block) if line.startswith("{")]
            ends = [i for i, line in enumerate(block) if line.startswith("}")]
            if starts and ends:
                found.append("\n".join(block[starts[0] : ends[-1] + 1]) + "\n")
            index = end + 1
            continue
        index += 1
    return found


def main(argv: list[str]) -> int:
    differs = 0
    for page, names in PAGES.items():
        found = bodies((HERE / page).read_text(encoding="utf-8"))
        if len(found) != len(names):
            print(f"{page}: {len(found)} bodies, expected {len(names)}")
            return 1
        for name, body in zip(names, found, strict=True):
            path = HERE / name
            if "--check" in argv:
                if not path.exists() or path.read_text(encoding="utf-8") != body:
                    print(f"{name}: differs from the extract")
                    differs = 1
            else:
                path.write_text(body, encoding="utf-8")
                print(f"wrote {name}")
    return differs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
