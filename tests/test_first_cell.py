"""The first cell of every chapter: installs diffusion_lite when it is missing, does nothing when present.

A real run, not a mock: a fresh virtual environment that sees this project's dependencies
(torch, IPython, ...) through a path file but NOT diffusion_lite; IPython runs the chapter's
first cell there, with the repository URL replaced by this checkout (no internet in CI).
"""
import importlib.util
import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("repo_url", ROOT / "tools" / "repo_url.py")
repo_url = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(repo_url)
REPO_URL = "git+" + repo_url.repository_url()  # the one setting: `repository: url:` in _config.yml
FIRST_CELLS = {p.name: "".join(json.loads(p.read_text())["cells"][0]["source"])
               for p in sorted((ROOT / "notebooks").glob("*.ipynb"))}


def test_every_chapter_has_the_same_install_cell():
    assert FIRST_CELLS, "no notebooks found"
    assert len(set(FIRST_CELLS.values())) == 1, "the first cells differ between chapters"
    assert REPO_URL in next(iter(FIRST_CELLS.values())), "run `make repo-url`: the cells differ from _config.yml"


def test_repository_url_is_read_from_the_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("title: x\nrepository:\n  branch: main\n  url: https://github.com/someone/fork/\n"
                      "launch_buttons:\n  url: https://wrong.example\n")
    assert repo_url.repository_url(config) == "https://github.com/someone/fork"
    config.write_text("title: x\n")
    with pytest.raises(SystemExit, match="no 'repository: url:'"):
        repo_url.repository_url(config)


def test_first_cell_installs_when_missing_and_is_a_no_op_when_present(tmp_path):
    cell = next(iter(FIRST_CELLS.values())).replace(REPO_URL, str(ROOT))
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages") and (Path(p) / "torch").is_dir())
    (Path(site) / "project_deps.pth").write_text(ours + "\n")  # deps visible, editable install not

    script = tmp_path / "run_cell.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        for attempt in (1, 2):
            before = "diffusion_lite" in sys.modules
            result = ip.run_cell({cell!r})
            assert result.success, result.error_in_exec
            import diffusion_lite
            print(attempt, before, diffusion_lite.__file__)
    """))
    probe = subprocess.run([py, "-c", "import diffusion_lite"], cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0, "diffusion_lite must be missing from the fresh environment"
    out = subprocess.run([py, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line.split() for line in out.stdout.splitlines() if line[:2] in ("1 ", "2 ")]
    assert lines[0][1] == "False" and str(env_dir) in lines[0][2]  # installed into the fresh env
    assert lines[1][1] == "True"  # second run: already importable, nothing to do
