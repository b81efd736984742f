"""The README's Python example runs as written (so the front page cannot drift)."""

import re
from pathlib import Path


def test_readme_python_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_readme_names_the_two_setup_commands():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, flags=re.M)
    assert "make test" in (Path(__file__).parents[1] / ".ci" / "run").read_text()
