"""Turn the request/response pairs of Microsoft's SCIM tutorial into SCIM request log v1 lines.

Input: use-scim-to-provision-users-and-groups.excerpt.md (verbatim, see SOURCE.md).
Output: scim-tutorial.jsonl (committed). Run from the repository root:

    .venv/bin/python tests/data/samples/entra-scim-tutorial/convert.py          # writes the file
    .venv/bin/python tests/data/samples/entra-scim-tutorial/convert.py --check  # exit 1 if it differs

Faithful conversion, one line per published exchange, in the published order:
  * method, path and query as published ("*PATCH /Users/… HTTP/1.1*": the protocol is dropped;
    "?filter=…" becomes `query`, left unencoded as the tutorial prints it);
  * status from the published "*HTTP/1.1 NNN …*" line. The Disable User response prints no status
    line: 200 is written (a PATCH answering with the resource), and the line says so in `note`;
  * bodies: `request_body` / `response_body` are the published JSON. Some published bodies are not
    strict JSON (trailing commas; raw line breaks inside strings in the /Schemas answer): they are
    read as a lenient reader such as .NET's would read them (the trailing comma dropped, the line
    break kept as "\\n"), and the text exactly as published is kept beside them in
    `request_body_published` / `response_body_published` (unknown fields are kept by the format);
  * `ts`: the tutorial gives none: 2 s apart from the page's date (ms.date 03/04/2025), 09:00 UTC;
  * `request_id`: tutorial-NN, so that ingesting the file twice stores each exchange once.
Standard library only.
"""
from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "use-scim-to-provision-users-and-groups.excerpt.md"
OUTPUT = HERE / "scim-tutorial.jsonl"
START = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=2)

_REQUEST = re.compile(r"^\*(GET|POST|PUT|PATCH|DELETE) (.+?)(?: HTTP/1\.1)?\*\s*$")
_STATUS = re.compile(r"^\*HTTP/1\.1 (\d{3})\b[^*]*\*\s*$")
_HEADING = re.compile(r"^#{2,6} (.*)$")


def lenient_json(text: str) -> object:
    """Decode JSON as published: trailing commas are dropped, raw line breaks in strings escaped."""
    out: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            elif char == "\n":
                out.append("\\n")
                continue
            out.append(char)
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            rest = text[index + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue  # a trailing comma
        out.append(char)
    return json.loads("".join(out))


def exchanges(markdown: str) -> list[dict]:
    """The published exchanges: section, method, target, status, request and response text."""
    found: list[dict] = []
    section = None
    current: dict | None = None
    in_response = False
    lines = markdown.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = _HEADING.match(line)
        if heading:
            title = re.sub(r"<a name=\"[^\"]*\"></a>", "", heading.group(1)).strip()
            if title.lower().startswith("response"):
                in_response = True
            elif title.lower().startswith("request"):
                in_response = False
            else:
                section = title
            index += 1
            continue
        request = _REQUEST.match(line)
        if request:
            current = {"section": section, "method": request.group(1), "target": request.group(2).strip(),
                       "status": None, "request": None, "response": None}
            found.append(current)
            in_response = False
            index += 1
            continue
        status = _STATUS.match(line)
        if status and current is not None:
            current["status"] = int(status.group(1))
            in_response = True
            index += 1
            continue
        if line.startswith("```") and current is not None:
            end = lines.index("```", index + 1)
            body = "\n".join(lines[index + 1 : end])
            current["response" if in_response else "request"] = body
            index = end + 1
            continue
        index += 1
    return found


def v1_lines(markdown: str) -> list[dict]:
    lines = []
    for number, item in enumerate(exchanges(markdown), 1):
        path, _, query = item["target"].partition("?")
        line: dict = {
            "ts": (START + STEP * (number - 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "method": item["method"],
            "path": path,
        }
        if query:
            line["query"] = query
        line["status"] = item["status"] if item["status"] is not None else 200
        line["request_id"] = f"tutorial-{number:02d}"
        line["published_section"] = item["section"]
        if item["status"] is None:
            line["note"] = "the tutorial prints no status line for this response; 200 written"
        for kind in ("request", "response"):
            text = item[kind]
            if text is None:
                continue
            line[f"{kind}_body"] = lenient_json(text)
            try:
                strict = json.loads(text)
            except json.JSONDecodeError:
                strict = None
            if strict is None:
                line[f"{kind}_body_published"] = text  # not strict JSON as published: kept verbatim
        lines.append(line)
    return lines


def render(markdown: str) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in v1_lines(markdown))


def main(argv: list[str]) -> int:
    text = render(SOURCE.read_text(encoding="utf-8"))
    if "--check" in argv:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT.name}: {'up to date' if same else 'differs from the converter output'}")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
