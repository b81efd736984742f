"""mkdocs hooks (``mkdocs.yml: hooks``): the pages generated at build time.

* ``tutorials/NAME.md`` from each py-percent tutorial ``docs/tutorials/NAME.py``: the
  cells (parsed by jupytext) are executed in order in one namespace, in a temporary
  working directory; each code cell is followed by what it printed and by the figures it
  left open (saved as ``tutorials/NAME_K.png`` and embedded). A failing cell fails the
  build. The test suite runs the same files (``tests/test_tutorials.py``).
* ``reference/hwmodels_table.md``: every registered hardware model, from the registry
  (``benchmarks/gen_hwmodels_doc.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render_tutorial(path: Path) -> tuple[str, dict[str, bytes]]:
    """Execute the py-percent tutorial at ``path``; its markdown page and figures."""
    import jupytext
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = jupytext.read(path, fmt="py:percent")
    namespace = {"__name__": f"tutorial_{path.stem}", "__file__": str(path)}
    parts, images = [], {}
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="accsim-docs-") as tmp:
        os.chdir(tmp)
        try:
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    parts.append(cell.source)
                    continue
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                parts.append(f"```python\n{cell.source}\n```")
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(cell.source, str(path), "exec"), namespace)  # noqa: S102
                if out.getvalue().strip():
                    parts.append(f"```text\n{out.getvalue().rstrip()}\n```")
                for num in plt.get_fignums():
                    fig = plt.figure(num)
                    buf = io.BytesIO()
                    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
                    plt.close(fig)
                    name = f"{path.stem}_{len(images) + 1}.png"
                    images[name] = buf.getvalue()
                    parts.append(f"![Figure {len(images)}]({name})")
        finally:
            os.chdir(here)
    return "\n\n".join(parts) + "\n", images


def hwmodels_table() -> str:
    """The generated reference page of every registered hardware model."""
    spec = importlib.util.spec_from_file_location(
        "gen_hwmodels_doc", ROOT / "benchmarks" / "gen_hwmodels_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen.table_page()


def on_files(files, config):
    from mkdocs.structure.files import File

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for src in sorted((ROOT / "docs" / "tutorials").glob("*.py")):
        md, images = render_tutorial(src)
        files.append(File.generated(config, f"tutorials/{src.stem}.md", content=md))
        for name, data in images.items():
            files.append(File.generated(config, f"tutorials/{name}", content=data))
    files.append(File.generated(config, "reference/hwmodels_table.md",
                                content=hwmodels_table()))
    return files
