"""experiments/mutation.py's per-mutant script: the fast stage kills, or the whole list decides."""

import os
import subprocess

from experiments import mutation


def _repo(tmp_path):
  root = tmp_path / "clone"
  (root / "pkg").mkdir(parents=True)
  (root / "tests").mkdir()
  (root / "pkg" / "__init__.py").write_text("")
  (root / "pkg" / "a.py").write_text("def f():\n  return 1\n")
  (root / "tests" / "test_a.py").write_text(
      "from pkg.a import f\n\n\ndef test_f():\n  assert f() == 1\n"
  )
  (root / "tests" / "test_b.py").write_text("def test_b():\n  pass\n")
  git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)
  git("init", "-q")
  git("add", ".")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
  return root


def _run(tmp_path, root, source, fast):
  (root / "pkg" / "a.py").write_text(source)
  group = dict(modules=["pkg/a.py"], tests=["tests/test_b.py", "tests/test_a.py"], fast=fast)
  times = tmp_path / "g.times"
  script = tmp_path / "g.sh"
  script.write_text(mutation.mutant_script({"env": {}}, group, str(root), str(times)))
  env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
  proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
  return proc.returncode, times.read_text().splitlines()[-1].split()[:3], proc.stdout


def test_fast_stage_kills_and_the_full_list_decides_the_rest(tmp_path):
  root = _repo(tmp_path)
  killer = {"pkg/a.py": ["tests/test_a.py"]}
  status, record, out = _run(tmp_path, root, "def f():\n  return 2\n", killer)
  assert status != 0 and record[:2] == ["pkg/a.py", "fast"], out
  assert mutation._failed_test(out) == "tests/test_a.py"  # pylint: disable=protected-access
  # A fast stage that misses the bug: the whole list still kills it.
  status, record, out = _run(tmp_path, root, "def f():\n  return 2\n", {"pkg/a.py": ["-k", "b"]})
  assert status != 0 and record[:2] == ["pkg/a.py", "full"], out
  # A survivor (same behaviour) passes both stages.
  status, record, out = _run(tmp_path, root, "def f():\n  return 3 - 2\n", killer)
  assert status == 0 and record == ["pkg/a.py", "full", "0"], out
  seconds, timed, by_fast = mutation._times(str(tmp_path), "g")  # pylint: disable=protected-access
  assert timed == 3 and by_fast == 1 and seconds >= 0


def test_table_counts_equivalents_apart_and_names_the_tests_added_since():
  def mutant(line, outcome, source):
    return dict(
        path="pkg/a.py",
        line=line,
        operator="Op",
        occurrence=0,
        source=source,
        outcome=outcome,
        killed_by="tests/test_a.py" if outcome == "killed" else "",
    )

  results = {
      "g": [mutant(1, "killed", "a"), mutant(2, "survived", "b"), mutant(3, "survived", "c")]
      + [mutant(4, "survived", "d"), mutant(5, "pending", "e")]
  }
  entry = lambda source, **kw: dict(path="pkg/a.py", operator="Op", source=source, **kw)
  cfg = dict(
      equivalent=[entry("b", reason="no input tells them apart")],
      killed_since=[entry("c", test="tests/test_c.py::test_c")],
  )
  text = mutation.table(cfg, results, "0123456789abcdef", {"g": (120, 4, 1)})
  # 1 killed of 3 non-equivalent (b is equivalent, e not run); c killed since: 2 of 3.
  assert "| g | 5 | 1 | 1 | 1 | 2 | 1 | 33% (1/3); 67% (2/3) with the tests added since |" in text
  assert "equivalent: no input tells them apart" in text
  assert "killed since by tests/test_c.py::test_c (checked by hand)" in text
  assert "| g | pkg/a.py:4 | Op #0 | `d` | **survived** |" in text
