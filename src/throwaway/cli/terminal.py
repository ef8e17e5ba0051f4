"""What may reach a terminal: text from guest code or a model, with its control sequences taken out.

Guest output, tracebacks, file names and model replies are untrusted text. A
terminal acts on escape sequences inside them: it can clear the screen, move
the cursor and overwrite lines that were printed before (a forged "Tool result:
ok"), set the window title, or, on some terminals, write to the clipboard or
report text back as if typed. So before anything from the guest or the model
is printed, every escape sequence (CSI, OSC, DCS and the like) is removed
whole, and every other control character but newline and tab goes too:
carriage returns that rewrite a line, backspaces, bells, DEL, the C1 range,
and the Unicode controls that reverse the direction of text.
"""

from __future__ import annotations

import re

# ESC followed by a whole sequence: CSI (ESC [ params final), OSC / DCS / SOS /
# PM / APC strings up to their terminator (BEL or ESC \) or the end of the text,
# or any two-character escape. The same in their 8-bit C1 forms.
_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]?               # CSI
    | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|(?=\n)|\Z)   # OSC, DCS, SOS, PM, APC
    | \x1b [ -/]* [0-~]?                                 # any other escape
    """,
    re.VERBOSE | re.DOTALL,
)
# What is left: C0 controls but tab and newline, DEL, C1, and the bidirectional
# overrides and isolates that make text read differently from how it is stored.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """`text` with escape sequences and control characters removed; newlines (``\\r\\n`` too) and tabs kept."""
    if text.isprintable():
        return text  # the common case, and quick
    text = text.replace("\r\n", "\n")
    return _CONTROL.sub("", _SEQUENCE.sub("", text))
