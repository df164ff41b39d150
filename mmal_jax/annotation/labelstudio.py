"""Label Studio: import tasks with the model's suggestions, and the export that comes back.

One labeling config serves both query modalities: the query is a HyperText (an <img> for an image,
the text for a text) and the answer a single-choice Choices whose options come from the task
itself (Label Studio's dynamic choices, `value="$options"`): the model's top-k candidates, each
with `alias` = its content id (what the export's result holds), and "none of these" (alias
"none"). Each task carries the model's best candidate as a prediction, so annotators start from it.

Images are referenced as URLs: `image_url_prefix` + the absolute path without its leading "/"; the
default is Label Studio's local-file serving (/data/local-files/?d=...), which needs
LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=/.
"""

import html

from mmal_jax.annotation.project import AnswerError

FROM_NAME, TO_NAME = "partner", "query"
DEFAULT_IMAGE_URL_PREFIX = "/data/local-files/?d="

CONFIG_XML = f"""<View>
  <Header value="Which one is the partner of this $query_kind?"/>
  <HyperText name="{TO_NAME}" value="$query_html"/>
  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" required="true"
           value="$options"/>
</View>
"""


def _shown(item, is_image, url_prefix):
  """(label, html) of an item: an image by its path and thumbnail, a text as itself."""
  if is_image:
    url = html.escape(url_prefix + item["source"].lstrip("/"), quote=True)
    return item["user_id"], f'<img src="{url}" style="max-height:160px"/>'
  return item["source"], html.escape(item["source"])


def task(query, item, candidates, *, model_version, url_prefix=DEFAULT_IMAGE_URL_PREFIX):
  """One import task. query: dict(qid, modality); item and candidates[j]: dict(uid, user_id,
  source) of the query's item and of its suggestions, best first."""
  is_image = query["modality"] == 0
  _, query_html = _shown(item, is_image, url_prefix)
  options = []
  for c in candidates:
    label, shown = _shown(c, not is_image, url_prefix)
    options.append(dict(value=label, alias=c["uid"], html=shown))
  options.append(dict(value="none of these", alias="none"))
  out = dict(
      data=dict(
          query_id=query["qid"],
          query_kind="image" if is_image else "text",
          query_item=item["uid"],
          query_user_id=item["user_id"],
          query_html=query_html,
          options=options,
      )
  )
  if candidates:
    out["predictions"] = [
        dict(
            model_version=model_version,
            result=[
                dict(
                    from_name=FROM_NAME,
                    to_name=TO_NAME,
                    type="choices",
                    value=dict(choices=[candidates[0]["uid"]]),
                )
            ],
        )
    ]
  return out


def answers_of_export(tasks, path):
  """(qid, partner id, where) of each answered task of a Label Studio JSON export (a list of tasks
  with data.query_id and annotations[].result[]). Cancelled (skipped) annotations are ignored; a
  task whose annotations disagree, or that is malformed, raises AnswerError naming it."""
  if not isinstance(tasks, list):
    raise AnswerError(
        f"{path}: a Label Studio JSON export is a list of tasks; got {type(tasks).__name__}"
    )
  rows = []
  for n, t in enumerate(tasks):
    where = f"{path} task {n + 1}" + (
        f" (id {t['id']})" if isinstance(t, dict) and "id" in t else ""
    )
    qid = t.get("data", {}).get("query_id") if isinstance(t, dict) else None
    if not isinstance(qid, str) or not isinstance(t.get("annotations", []), list):
      raise AnswerError(
          f"{where}: no data.query_id or annotations list; export the project as JSON"
      )
    chosen = set()
    for a in t.get("annotations", []):
      if not isinstance(a, dict) or a.get("was_cancelled"):
        continue
      for r in a.get("result", []):
        if isinstance(r, dict) and r.get("from_name") == FROM_NAME:
          choices = r.get("value", {}).get("choices") if isinstance(r.get("value"), dict) else None
          if not isinstance(choices, list) or len(choices) != 1:
            raise AnswerError(
                f"{where}: result {FROM_NAME!r} must hold exactly one choice; got {choices!r}"
            )
          chosen.add(str(choices[0]))
    if len(chosen) > 1:
      raise AnswerError(
          f"{where}: annotators disagree on query {qid} ({', '.join(sorted(chosen))}); keep one"
          " annotation"
      )
    if chosen:
      rows.append((qid, chosen.pop(), where))
  return rows
