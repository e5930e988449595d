#!/usr/bin/env python3
"""Makes the session target's seed corpus (fuzz/seeds/session/) from the command lines of
the integration tests: one seed per test function, its lines in order, after a login as
"user" when the test logs in. Run from anywhere; rewrites the seeds it makes."""
import pathlib
import re

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fuzz" / "seeds" / "session"
out.mkdir(parents=True, exist_ok=True)
for old in out.glob("seed-*"):
    old.unlink()
call = re.compile(r'\.(?:cmd|send)\(\s*"((?:[^"\\]|\\.)*)"')
count = 0
for test in sorted((root / "tests").glob("*.rs")):
    text = test.read_text()
    for body in re.split(r"\n(?:pub )?fn ", text)[1:]:
        name = body.split("(", 1)[0]
        lines = [bytes(m, "utf-8").decode("unicode_escape").encode("latin-1", "replace")
                 for m in call.findall(body)]
        if not lines:
            continue
        if ".login(" in body and not any(l.upper().startswith(b"USER") for l in lines):
            lines = [b"USER user", b"PASS pw"] + lines
        (out / f"seed-{test.stem}-{name}").write_bytes(b"\n".join(lines) + b"\n")
        count += 1
print(f"{count} seeds in {out}")
