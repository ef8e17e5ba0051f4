"""Docs, skills and the system prompt built from them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from throwaway.agent.library import Library, parse_front_matter
from throwaway.agent.prompts import TaskLimits, system_prompt


@pytest.fixture
def library(tmp_path):
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "charts.md").write_text(
        "# Charts\n\nMake charts with matplotlib.\n\n## Bar charts\n\nUse `plt.bar(x, heights)` then "
        "`plt.savefig('/output/chart.png')`.\n\n## Pie charts\n\nUse `plt.pie(sizes)`.\n"
    )
    (docs / "guides" / "excel.md").write_text("# Reading XLSX\n\nRead spreadsheets with openpyxl.load_workbook.\n")
    (docs / "logo.png").write_bytes(b"\x89PNG not text")
    skills = tmp_path / "skills"
    (skills / "pdf").mkdir(parents=True)
    (skills / "pdf" / "SKILL.md").write_text(
        "---\nname: pdf\ndescription: >\n  Fill in, merge and split PDF documents.\n---\n\n# PDF\n\nUse pypdf.\n"
    )
    (skills / "brand").mkdir()
    (skills / "brand" / "SKILL.md").write_text("---\nname: brand-colors\ndescription: Our brand's colors\n---\nBlue.\n")
    return Library(docs, skills)


def test_lists_docs_and_skills_as_the_guest_sees_them(library):
    assert library.docs == ["/docs/charts.md", "/docs/guides/excel.md"]
    assert [(s.name, s.description, s.path) for s in library.skills] == [
        ("brand-colors", "Our brand's colors", "/skills/brand/SKILL.md"),
        ("pdf", "Fill in, merge and split PDF documents.", "/skills/pdf/SKILL.md"),
    ]


def test_search_finds_the_right_section(library):
    answer = library.search("How do I make a bar chart?")
    assert answer.startswith("From /docs/charts.md > Bar charts:")
    assert "plt.bar" in answer


def test_search_points_at_matching_skills(library):
    answer = library.search("merge two PDF files")
    assert "Skill 'pdf': Fill in, merge and split PDF documents." in answer
    assert "/skills/pdf/SKILL.md" in answer


def test_search_without_a_match_lists_what_there_is(library):
    answer = library.search("quantum chromodynamics")
    assert "Nothing in the docs matches" in answer
    assert "/docs/guides/excel.md" in answer and "brand-colors" in answer


def test_guest_paths_cannot_escape(library, tmp_path):
    assert library.host_path("/docs/charts.md") == (tmp_path / "docs" / "charts.md").resolve()
    assert library.host_path("/docs/../secret") is None
    assert library.host_path("/etc/passwd") is None


def test_front_matter():
    meta, body = parse_front_matter("---\nname: x\ndescription: 'does: things'\n---\n\nBody\n")
    assert meta == {"name": "x", "description": "does: things"}
    assert body == "Body\n"
    assert parse_front_matter("no front matter") == ({}, "no front matter")


@dataclass
class FakeMount:  # the shape of FileSystem.mounts entries: data only, no sandbox behind it
    path: str
    kind: str
    description: str
    writable: bool


def test_system_prompt_says_what_the_task_has(library):
    mounts = [
        FakeMount("/home/user", "memory", "", True),
        FakeMount("/output", "memory", "", True),
        FakeMount("/network/current-ip", "resource", "this machine's public IP", False),
        FakeMount("/data", "host", "sales figures, one CSV per month", False),
    ]
    prompt = system_prompt(mounts, library, TaskLimits(max_steps=12, cell_timeout=30),
                           host_modules=[("weather", "today's forecast")], extra="Answer in French.")
    assert "- /network/current-ip (resource, read-only): this machine's public IP" in prompt
    assert "- /data (host, read-only): sales figures, one CSV per month" in prompt
    assert "- /output (memory, read-write): files you make for the user" in prompt
    assert "- /docs/charts.md" in prompt
    assert "- pdf: Fill in, merge and split PDF documents. (/skills/pdf/SKILL.md)" in prompt
    assert "- weather: today's forecast" in prompt
    assert "at most 12 steps" in prompt and "30 s" in prompt
    assert prompt.endswith("Answer in French.")
    for tool in ("execute_python(code)", "describe(path, question)", "help(query)"):
        assert tool in prompt


def test_system_prompt_leaves_out_what_is_missing():
    prompt = system_prompt([FakeMount("/tmp", "memory", "", True)])
    assert "Docs" not in prompt and "Skills:" not in prompt and "Limits" not in prompt
