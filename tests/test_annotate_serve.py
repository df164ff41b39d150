"""The annotation page: several annotators at once (parallel HTTP clients against a real local
server) never get the same query and lose no answer; a kill mid-write or mid-ingest leaves a
consistent database holding every acknowledged answer."""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from annotate_helpers import write_unpaired
from mmal_jax import annotate
from mmal_jax.annotation import serve
from mmal_jax.annotation.project import Project
from test_annotate import tiny_config, truth_uid

BUDGET = 24


@pytest.fixture(scope="module")
def asked(tmp_path_factory):
  """A project with BUDGET queries pending, and the true answer (a content id) of each."""
  root = tmp_path_factory.mktemp("asked")
  images, texts, truth = write_unpaired(str(root), num_groups=30, cache_dir=str(root / "cache"))
  directory = str(root / "p")
  annotate.init(directory, tiny_config(), images, texts)
  annotate.next_batch(directory, budget=BUDGET)
  project = Project(directory)
  answers = {q.qid: truth_uid(project, truth, q.modality, q.item) for q in project.queries()}
  project.close()
  assert len(answers) == BUDGET
  return directory, answers


@pytest.fixture
def project(asked, tmp_path):
  directory = str(tmp_path / "p")
  shutil.copytree(asked[0], directory)
  return directory, asked[1]


def get(base, path):
  with urllib.request.urlopen(base + path, timeout=60) as r:
    return r.status, r.read()


def post_json(base, path, obj):
  request = urllib.request.Request(
      base + path, json.dumps(obj).encode(), {"Content-Type": "application/json"}
  )
  try:
    with urllib.request.urlopen(request, timeout=60) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def annotate_all(base, answers, name, served, acked, *, stop=None):
  """One annotator's loop: take the next query, ask again (it must be the same one: the lease is
  the annotator's), answer it truthfully; until nothing is left (or `stop` is set)."""
  while stop is None or not stop.is_set():
    try:
      _, body = get(base, f"/api/next?annotator={name}")
      query = json.loads(body)["query"]
      if query is None:
        return
      assert json.loads(get(base, f"/api/next?annotator={name}")[1])["query"]["qid"] == query["qid"]
      served[name].append(query["qid"])
      status, reply = post_json(
          base, "/api/answer", dict(qid=query["qid"], partner=answers[query["qid"]], annotator=name)
      )
    except (urllib.error.URLError, ConnectionError):
      return  # the server was killed
    assert status == 200, reply
    acked.append((query["qid"], answers[query["qid"]]))


def recorded(directory):
  """{qid: partner content id or 'none'} of the answers in the database, checked consistent."""
  project = Project(directory)
  try:
    assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    names = [{r[0]: r[1] for r in project.items(m)} for m in (0, 1)]
    out = {}
    for qid, m, partner, state in project.db.execute(
        "SELECT q.qid, q.modality, a.partner, q.state FROM queries q "
        "LEFT JOIN answers a USING (qid)"
    ):
      assert (state == "answered") == (partner is not None), qid
      if partner is not None:
        out[qid] = "none" if partner < 0 else names[1 - m][partner]
    partners = [p for p in out.values() if p != "none"]
    assert len(partners) == len(set(partners))  # no item paired twice
    return out
  finally:
    project.close()


def test_concurrent_annotators(project):
  directory, answers = project
  server = serve.make_server(directory, "127.0.0.1", 0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  base = f"http://127.0.0.1:{server.server_address[1]}"
  try:
    # The page itself: a query with its suggestions as buttons, answered by a form post.
    status, page = get(base, "/?annotator=page")
    page = page.decode()
    assert status == 200 and page.count("name=partner") == 4 + 1 and "none of these" in page
    qid = re.search(r'name=qid value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(dict(qid=qid, partner=answers[qid], annotator="page")).encode()
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as e:
      opener.open(base + "/answer", form, timeout=60)
    assert e.value.code == 303 and e.value.headers["Location"] == "/?annotator=page"

    served, acked = collections.defaultdict(list), [(qid, answers[qid])]
    threads = [
        threading.Thread(target=annotate_all, args=(base, answers, f"annotator{k}", served, acked))
        for k in range(4)
    ]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    # Nobody got a query another one had, every query was answered once, nothing was lost.
    seen = [q for qs in served.values() for q in qs]
    assert len(seen) == len(set(seen)) == BUDGET - 1 and qid not in seen
    assert sum(len(v) > 0 for v in served.values()) >= 2  # the annotators did work side by side
    assert sorted(acked) == sorted(answers.items()) == sorted(recorded(directory).items())
    # Answering an answered query again: the same answer is a no-op, another one is refused.
    assert post_json(base, "/api/answer", dict(qid=qid, partner=answers[qid], annotator="x")) == (
        200,
        dict(recorded=0),
    )
    status, reply = post_json(base, "/api/answer", dict(qid=qid, partner="none", annotator="x"))
    assert status == 409 and qid in reply["error"]
    assert json.loads(get(base, "/api/next?annotator=late")[1]) == dict(query=None)
  finally:
    server.shutdown()
    server.server_close()


class NoRedirect(urllib.request.HTTPRedirectHandler):

  def redirect_request(self, *args, **kwargs):
    return None


def test_leases(project):
  directory, _ = project
  a, b = Project(directory), Project(directory)
  qa, qb = a.claim("alice", 1000.0), b.claim("bob", 1000.0)
  assert qa.qid != qb.qid and a.claim("alice", 1000.0).qid == qa.qid
  c = Project(directory)
  assert c.claim("carol", 0.0).qid not in (qa.qid, qb.qid)
  # An expired lease (carol's, 0 s) is handed to the next annotator who asks.
  expired = c.query(c.db.execute("SELECT qid FROM queries WHERE lease_owner='carol'").fetchone()[0])
  assert b.claim("dave", 1000.0).qid == expired.qid


def test_kill_mid_serve(project):
  directory, answers = project
  proc = subprocess.Popen(
      [sys.executable, "-m", "mmal_jax.annotate", "serve", f"--project={directory}", "--port=0"],
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
  )
  try:
    line = proc.stdout.readline()
    base = re.search(r"(http://[^/]+)/", line).group(1)
    served, acked, stop = collections.defaultdict(list), [], threading.Event()
    threads = [
        threading.Thread(
            target=annotate_all,
            args=(base, answers, f"a{k}", served, acked),
            kwargs=dict(stop=stop),
        )
        for k in range(3)
    ]
    for t in threads:
      t.start()
    while len(acked) < BUDGET // 2:
      threads[0].join(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # while the clients are mid-request
    stop.set()
    for t in threads:
      t.join()
  finally:
    proc.kill()
    proc.wait()
  after = recorded(directory)
  assert len(acked) < BUDGET and set(acked) <= set(after.items())
  assert all(answers[q] == p for q, p in after.items())
  # The project goes on after a restart: the same annotators get back the queries they held
  # (their leases outlive the server), then the rest.
  server = serve.make_server(directory, "127.0.0.1", 0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    for k in range(3):
      annotate_all(f"http://127.0.0.1:{server.server_address[1]}", answers, f"a{k}", served, acked)
  finally:
    server.shutdown()
    server.server_close()
  assert recorded(directory) == answers


_SLOW_INGEST = """
import sys, time
from mmal_jax.annotation import project
check = project._AnswerState.check
def slow(self, *args):
  print("checking", flush=True)
  time.sleep(0.05)
  return check(self, *args)
project._AnswerState.check = slow
p = project.Project(sys.argv[1])
from mmal_jax.annotation import answers
p.record_answers(answers.read(sys.argv[2]), origin="ingest")
print("done", flush=True)
"""


def test_kill_mid_ingest(project, tmp_path):
  directory, answers = project
  path = tmp_path / "answers.jsonl"
  path.write_text(
      "".join(json.dumps(dict(query_id=q, partner_id=p)) + "\n" for q, p in answers.items())
  )
  proc = subprocess.Popen(
      [sys.executable, "-c", _SLOW_INGEST, directory, str(path)], stdout=subprocess.PIPE, text=True
  )
  try:
    for _ in range(BUDGET // 2):  # halfway through checking the file, inside the transaction
      assert proc.stdout.readline() == "checking\n"
    os.kill(proc.pid, signal.SIGKILL)
  finally:
    proc.kill()
    proc.wait()
  assert recorded(directory) == {}  # all or nothing: nothing
  assert annotate.ingest(directory, str(path)) == BUDGET
  assert recorded(directory) == answers
