"""Image decoding and resizing shared by every reader: encoded bytes or files -> uint8[S, S, 3].

Images are decoded with PIL, converted to RGB and squashed to S x S with a bilinear resize (no
center crop: the same plain `resize(S)` big_vision uses for retrieval evals, so the whole image is
seen and wide/tall images are distorted rather than cut). JPEGs are decoded at reduced DCT scale
(`Image.draft`) when the image is at least twice the target size: several times faster on COCO.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import pathlib
from collections.abc import Sequence

import numpy as np
import PIL.Image

from mmal_jax.data.pairs import DataError

# A record as a reader yields it: (encoded image bytes or image path, caption, description of the
# record for error messages: file + id).
Record = tuple[bytes | pathlib.Path, str, str]


def why(e: BaseException) -> str:
  """`Type: first line of the message`, to embed an exception in a one-line DataError."""
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0] if lines else ''}"


def decode_image(image: bytes | os.PathLike, image_size: int, where: str) -> np.ndarray:
  """Encoded image (bytes or file path) -> uint8[S, S, 3] RGB, bilinear squash to S x S."""
  try:
    with PIL.Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as img:
      img.draft(None, (image_size, image_size))  # JPEG only; keeps >= S on both sides
      rgb = img.convert("RGB").resize((image_size, image_size), PIL.Image.Resampling.BILINEAR)
  except FileNotFoundError:
    raise DataError(f"{where}: image file not found; restore the file or drop the record") from None
  except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as e:
    raise DataError(
        f"{where}: unreadable image ({why(e)}); replace the file with a"
        " valid JPEG/PNG or drop the record"
    ) from None
  return np.asarray(rgb, dtype=np.uint8)


def decode_images(
    records: Sequence[Record], image_size: int, *, num_threads: int = 4
) -> np.ndarray:
  """uint8[len(records), S, S, 3]: `decode_image` of each record's image, on threads."""
  out = np.empty((len(records), image_size, image_size, 3), np.uint8)
  # PIL releases the GIL while decoding and resizing, so threads give real parallelism.
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    for k, img in enumerate(pool.map(lambda r: decode_image(r[0], image_size, r[2]), records)):
      out[k] = img
  return out


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """uint8[N, H, W, 3] -> uint8[N, size, size, 3], bilinear (as the real-data readers resize)."""
  if images.shape[1:3] == (size, size):
    return images
  return (
      np.stack(
          [
              np.asarray(
                  PIL.Image.fromarray(im).resize((size, size), PIL.Image.Resampling.BILINEAR)
              )
              for im in images
          ]
      )
      if len(images)
      else np.zeros((0, size, size, 3), np.uint8)
  )
