"""The files the api function serves to browsers (the API reference, the console) are inside
the deployed source, and Swagger UI's files come with a runtime requirement, not a CDN."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "terraform" / "scripts"))
import stage_functions  # noqa: E402


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_functions.stage(tmp_path_factory.mktemp("functions") / "src")


def test_the_reference_and_console_files_are_in_the_staged_source(staged: Path) -> None:
    shipped = {p.relative_to(ROOT) for p in (ROOT / "functions" / "static").rglob("*.*")}
    assert shipped, "no static files found"
    for rel in shipped:
        assert (staged / rel).read_bytes() == (ROOT / rel).read_bytes(), rel


def test_swagger_ui_is_a_runtime_requirement_of_the_functions(staged: Path) -> None:
    requirements = (staged / "requirements.txt").read_text()
    assert re.search(r"^swagger-ui-py==\S+", requirements, re.M), requirements


def test_no_page_loads_anything_from_another_origin() -> None:
    for path in (ROOT / "functions" / "static").rglob("*.*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text()
            assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
            assert "<script>" not in text and "style=" not in text, path  # CSP: no inline
