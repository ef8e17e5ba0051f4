"""The task's library: help text under /docs and skills under /skills.

A skill is a folder holding a ``SKILL.md`` whose front matter gives its
``name`` and ``description`` (the format of Anthropic's skills). Both folders
are host folders mounted read-only into the guest; this module reads them on
the host side, to list them in the system prompt and to answer `help`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOCS_GUEST = "/docs"
SKILLS_GUEST = "/skills"
_TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
_MAX_FILES = 500
_MAX_SECTION = 2000


@dataclass(frozen=True)
class Skill:
    """A skill: its name, what it is for, and where the guest finds its SKILL.md."""

    name: str
    description: str
    path: str


@dataclass(frozen=True)
class Section:
    """A searchable piece of the library: a file's text under one heading."""

    path: str
    heading: str
    text: str


class Library:
    """Docs and skills from host folders, as the guest sees them.

    `docs` and `skills` are host folders (either may be None); the guest sees
    them at `DOCS_GUEST` and `SKILLS_GUEST`.
    """

    def __init__(self, docs: str | Path | None = None, skills: str | Path | None = None) -> None:
        self.docs_dir = Path(docs) if docs else None
        self.skills_dir = Path(skills) if skills else None
        self.docs = self._doc_files()
        self.skills = self._skills()
        self._sections: list[Section] | None = None

    def __bool__(self) -> bool:
        return bool(self.docs or self.skills)

    def _doc_files(self) -> list[str]:
        if not self.docs_dir or not self.docs_dir.is_dir():
            return []
        files = sorted(p for p in self.docs_dir.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)
        return [str(PurePosixPath(DOCS_GUEST) / p.relative_to(self.docs_dir).as_posix()) for p in files[:_MAX_FILES]]

    def _skills(self) -> list[Skill]:
        if not self.skills_dir or not self.skills_dir.is_dir():
            return []
        found = []
        for skill_md in sorted(self.skills_dir.rglob("SKILL.md"))[:_MAX_FILES]:
            meta, _ = parse_front_matter(skill_md.read_text(errors="replace"))
            folder = skill_md.parent
            guest = PurePosixPath(SKILLS_GUEST) / skill_md.relative_to(self.skills_dir).as_posix()
            found.append(Skill(
                name=str(meta.get("name") or folder.name),
                description=" ".join(str(meta.get("description") or "").split()),
                path=str(guest),
            ))
        return found

    def host_path(self, guest_path: str) -> Path | None:
        """The host file behind a guest path under /docs or /skills (None if outside)."""
        for guest_root, host_root in ((DOCS_GUEST, self.docs_dir), (SKILLS_GUEST, self.skills_dir)):
            if host_root and (guest_path == guest_root or guest_path.startswith(guest_root + "/")):
                rel = PurePosixPath(guest_path).relative_to(guest_root)
                path = (host_root / rel).resolve()
                if path.is_relative_to(host_root.resolve()):
                    return path
        return None

    def sections(self) -> list[Section]:
        """Every doc and skill file cut at its headings (built on first use)."""
        if self._sections is None:
            self._sections = []
            paths = self.docs + [s.path for s in self.skills]
            for guest in paths:
                host = self.host_path(guest)
                if host and host.is_file():
                    _, body = parse_front_matter(host.read_text(errors="replace"))
                    self._sections.extend(_split_sections(guest, body))
        return self._sections

    def search(self, query: str, limit: int = 3) -> str:
        """Answer `query` from the library: the best-matching doc sections and skills."""
        summaries = [Section(s.path, f"skill {s.name}", f"{s.name}: {s.description}") for s in self.skills]
        ranked = _rank(_terms(query), summaries + self.sections())[:limit]
        if not ranked:
            listing = "\n".join(f"- {p}" for p in self.docs) or "(no docs)"
            skill_list = "\n".join(f"- {s.name}: {s.description} ({s.path})" for s in self.skills) or "(no skills)"
            return f"Nothing in the docs matches {query!r}.\n\nDocs:\n{listing}\n\nSkills:\n{skill_list}"
        out = []
        for section in ranked:
            if section in summaries:
                name, _, description = section.text.partition(": ")
                out.append(f"Skill {name!r}: {description}\nRead {section.path} for how to use it.")
            else:
                title = section.path + (f" > {section.heading}" if section.heading else "")
                out.append(f"From {title}:\n{section.text}")
        return "\n\n---\n\n".join(out)


def parse_front_matter(text: str) -> tuple[dict[str, object], str]:
    """Split ``---``-fenced YAML front matter from a Markdown text: (metadata, body)."""
    if not text.startswith("---"):
        return {}, text
    end = re.search(r"^---\s*$", text[3:], re.MULTILINE)
    if not end:
        return {}, text
    raw, body = text[3:3 + end.start()], text[3 + end.end():]
    try:
        import yaml  # pyyaml comes with dbos

        meta = yaml.safe_load(raw) or {}
    except Exception:  # noqa: BLE001 - malformed front matter: fall back to plain "key: value" lines
        meta = {
            k.strip(): v.strip().strip("\"'")
            for k, _, v in (line.partition(":") for line in raw.splitlines() if ":" in line)
        }
    return (meta if isinstance(meta, dict) else {}), body.lstrip("\n")


def _split_sections(path: str, text: str) -> list[Section]:
    sections, heading, lines = [], "", []
    for line in text.splitlines():
        match = re.match(r"^#{1,6}\s+(.*)", line)
        if match:
            if "".join(lines).strip():
                sections.append(Section(path, heading, "\n".join(lines).strip()[:_MAX_SECTION]))
            heading, lines = match.group(1).strip(), []
        else:
            lines.append(line)
    if "".join(lines).strip() or heading:
        sections.append(Section(path, heading, "\n".join(lines).strip()[:_MAX_SECTION]))
    return sections


_STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "how", "i", "in", "is", "it",
    "me", "my", "of", "on", "or", "should", "the", "this", "to", "what", "which", "with", "you", "your", "use",
    "using",
})


def _words(text: str) -> list[str]:
    # A crude stemmer is enough to match "charts" with "chart".
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in re.findall(r"[a-z0-9]+", text.lower())]


def _terms(text: str) -> set[str]:
    return {w for w in _words(text) if w not in _STOP and len(w) > 1}


def _rank(terms: set[str], sections: list[Section]) -> list[Section]:
    """Sections by a small BM25: term frequency, damped by length, weighted by rarity."""
    if not terms or not sections:
        return []
    docs = [Counter(_words(f"{s.heading} {s.heading} {s.path} {s.text}")) for s in sections]
    avg_len = sum(sum(d.values()) for d in docs) / len(docs) or 1.0
    scored = []
    for section, counts in zip(sections, docs):
        length = sum(counts.values())
        score = 0.0
        for term in terms:
            tf = counts.get(term, 0)
            if not tf:
                continue
            df = sum(1 for d in docs if term in d)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg_len))
        if score > 0:
            scored.append((score, section))
    scored.sort(key=lambda pair: -pair[0])
    return [section for _, section in scored]
