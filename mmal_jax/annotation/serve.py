"""The annotation page: `python -m mmal_jax.annotate serve --project=DIR`.

Each annotator opens http://HOST:PORT/, gives a name, and sees one pending query at a time: the
item, the model's suggestions from the other modality (best first) and "none of these". A click
records the answer in the project database at once and shows the next query.

Served by the standard library's ThreadingHTTPServer: four routes and no templates do not need a
web framework (nor a new dependency), and a thread per request is plenty for a handful of
annotators on a local network. It is not meant for the open internet (no authentication).
Correctness under concurrency lives in the database, not in the server: every request opens its
own connection; a query is handed out by `Project.claim` (a lease in one transaction, so two
annotators never get the same query) and answered by `Project.record_answers` (one transaction, so
an answer the page acknowledged is committed, and two conflicting answers cannot both land).

Routes: GET / (the page; ?annotator=NAME), POST /answer (the page's form), GET /image/<index>
(an image item's file), and the same as JSON for scripts: GET /api/next?annotator=NAME ->
{"query": {...} | null}, POST /api/answer {"qid", "partner", "annotator"} -> {"recorded": n} or
409 {"error": "..."}.
"""

import html
import http.server
import json
import mimetypes
import urllib.parse

from mmal_jax.annotation import project as project_lib
from mmal_jax.annotation.unaligned import IMAGE

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:24px auto;color:#222}
.query{display:flex;gap:16px;align-items:center;padding:12px;background:#f3f5f8;border-radius:8px}
.query img{height:160px;image-rendering:pixelated;border-radius:4px}
.query .text{font-size:1.3em}
form.choices{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin-top:16px}
form.choices button{padding:10px;border:1px solid #bbb;border-radius:8px;background:#fff;cursor:pointer;font-size:1em}
form.choices button:hover{border-color:#2a6fdb;background:#eef4ff}
form.choices button img{height:120px;image-rendering:pixelated;display:block;margin:0 auto 6px}
form.choices button.none{background:#fff4f0}
.meta{color:#666;font-size:.9em}
small{display:block;color:#666}
"""


def _query_json(project, query):
  """A claimed query with its item and suggestions, as the page and /api/next show it."""

  def shown(m, ids):
    return [
        dict(
            id=uid,
            user_id=user_id,
            **(dict(image=f"/image/{idx}") if m == IMAGE else dict(text=source)),
        )
        for idx, uid, user_id, source in project.items(m, ids)
    ]

  return dict(
      qid=query.qid,
      kind=("image", "text")[query.modality],
      item=shown(query.modality, [query.item])[0],
      candidates=shown(1 - query.modality, query.candidates),
  )


def _shown(entry):
  """An item as the page shows it: an image with your id under it, or the text."""
  if "image" in entry:
    user_id = html.escape(entry["user_id"])
    return f'<img src="{html.escape(entry["image"])}" alt="{user_id}"><small>{user_id}</small>'
  return f'<span class="text">{html.escape(entry["text"])}</span>'


def _page(annotator, query, counts, note=""):
  title = "mmal_jax annotation"
  if not annotator:
    body = (
        "<h1>Pair images and texts</h1><form method=get>Your name: <input name=annotator "
        "autofocus required> <button>Start</button></form>"
    )
  elif query is None:
    body = f"<h1>Nothing left to annotate</h1><p>Thank you, {html.escape(annotator)}.</p>"
  else:
    other = "text" if query["kind"] == "image" else "image"
    buttons = "".join(
        f'<button name=partner value="{html.escape(c["id"])}">{_shown(c)}</button>'
        for c in query["candidates"]
    )
    body = (
        f'<h1>Which {other} belongs to this {query["kind"]}?</h1>'
        f'<div class=query>{_shown(query["item"])}<div class=meta>query {query["qid"]}<br>'
        f'{html.escape(query["item"]["user_id"])}</div></div>'
        f'<form class=choices method=post action="/answer">'
        f'<input type=hidden name=qid value="{query["qid"]}">'
        f'<input type=hidden name=annotator value="{html.escape(annotator)}">'
        f"{buttons}<button class=none name=partner value=none>none of these</button></form>"
    )
  progress = (
      f"<p class=meta>{html.escape(note)} annotator {html.escape(annotator or '-')} &middot; "
      f"{counts.get('answered', 0)} answered, {counts.get('pending', 0)} pending, "
      f"{counts['pairs']} pairs</p>"
  )
  return (
      f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
      f"<style>{_STYLE}</style></head><body>{body}{progress}</body></html>"
  )


class _Handler(http.server.BaseHTTPRequestHandler):
  directory = None  # set by make_server
  lease_seconds = None

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    pass  # one line per request would bury the server's own output

  def _send(self, status, body, content_type="text/html; charset=utf-8", headers=()):
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(data)))
    for k, v in headers:
      self.send_header(k, v)
    self.end_headers()
    self.wfile.write(data)

  def _json(self, status, obj):
    self._send(status, json.dumps(obj), "application/json")

  def _project(self):
    return project_lib.Project(self.directory)

  def _next(self, project, annotator):
    query = project.claim(annotator, self.lease_seconds)
    return None if query is None else _query_json(project, query)

  def do_GET(self):  # pylint: disable=invalid-name
    url = urllib.parse.urlparse(self.path)
    params = dict(urllib.parse.parse_qsl(url.query))
    annotator = params.get("annotator", "").strip()
    project = self._project()
    try:
      if url.path == "/":
        query = self._next(project, annotator) if annotator else None
        self._send(200, _page(annotator, query, project.counts()))
      elif url.path == "/api/next" and annotator:
        self._json(200, dict(query=self._next(project, annotator)))
      elif url.path.startswith("/image/") and url.path[7:].isdigit():
        idx = int(url.path[7:])
        if idx >= project.num_items(IMAGE):
          return self._send(404, "no such image")
        path = project.items(IMAGE, [idx])[0][3]
        with open(path, "rb") as f:
          data = f.read()
        self._send(200, data, mimetypes.guess_type(path)[0] or "application/octet-stream")
      else:
        self._send(404, "not found (GET / or /api/next?annotator=NAME)")
    finally:
      project.close()

  def _record(self, project, qid, partner, annotator):
    """(status, message): the answer recorded (200) or refused (409, the reason)."""
    try:
      n = project.record_answers([(qid, partner, f"by {annotator}")], origin="serve")
    except project_lib.AnswerError as e:
      return 409, str(e)
    return 200, n

  def do_POST(self):  # pylint: disable=invalid-name
    length = int(self.headers.get("Content-Length") or 0)
    raw = self.rfile.read(length).decode("utf-8")
    project = self._project()
    try:
      if self.path == "/answer":
        form = dict(urllib.parse.parse_qsl(raw))
        annotator = form.get("annotator", "")
        status, message = self._record(project, form.get("qid"), form.get("partner", ""), annotator)
        if status == 200:
          where = "/?" + urllib.parse.urlencode(dict(annotator=annotator))
          return self._send(303, "", headers=[("Location", where)])
        query = self._next(project, annotator)
        self._send(409, _page(annotator, query, project.counts(), note=f"Not recorded: {message}."))
      elif self.path == "/api/answer":
        try:
          body = json.loads(raw)
          qid, partner, annotator = body["qid"], str(body["partner"]), str(body["annotator"])
        except (ValueError, KeyError, TypeError):
          return self._json(400, dict(error='send {"qid": ..., "partner": ..., "annotator": ...}'))
        status, message = self._record(project, qid, partner, annotator)
        self._json(status, dict(recorded=message) if status == 200 else dict(error=message))
      else:
        self._send(404, "not found (POST /answer or /api/answer)")
    finally:
      project.close()


def make_server(directory, host="127.0.0.1", port=8080) -> http.server.ThreadingHTTPServer:
  """A server of the project in `directory` (port 0: a free one, see server.server_address)."""
  project = project_lib.Project(directory)
  lease = float(project.config().lease_seconds)
  project.close()
  handler = type("Handler", (_Handler,), dict(directory=directory, lease_seconds=lease))
  server = http.server.ThreadingHTTPServer((host, port), handler)
  server.daemon_threads = True
  return server
