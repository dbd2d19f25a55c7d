"""Multipart form parsing that loses one bad file name, not the whole upload.

Werkzeug (3.1, pinned in constraints.txt) decodes each part's headers as strict UTF-8 in
``werkzeug.sansio.multipart.MultipartDecoder._parse_headers``; one byte that is not UTF-8 in one file name
(a Latin-1 "café.png" sent by an old client) raises inside the parser, and werkzeug then answers as if no
form had been sent at all: a 500-file batch becomes "no files were sent". Here a bad byte becomes U+FFFD
and only that file's name suffers.

Why a process-wide patch and not a narrower hook: ``MultiPartParser.parse`` builds its decoder by the
module-level name ``MultipartDecoder`` (werkzeug/formparser.py), and neither Flask's request class nor
werkzeug's form parser offers a setting for the decoder, so the only alternatives are replacing that name or
copying werkzeug's parse loop. ``install`` does the former, once, from the app factory (web/__init__.py).
tests/web/test_multipart.py fails when werkzeug changes either fact (so this can go), or when it would
stop working.
"""
from __future__ import annotations

import werkzeug.formparser
from werkzeug.datastructures import Headers
from werkzeug.sansio.multipart import HEADER_CONTINUATION_RE, MultipartDecoder


class TolerantMultipartDecoder(MultipartDecoder):
    """werkzeug's decoder, with part headers decoded as UTF-8 with replacement instead of strictly."""

    def _parse_headers(self, data) -> Headers:
        data = HEADER_CONTINUATION_RE.sub(b" ", data)
        headers = []
        for line in data.splitlines():
            line = line.strip(b" \t")
            if line:
                name, _, value = line.decode("utf-8", "replace").partition(":")
                headers.append((name.strip(" \t"), value.strip(" \t")))
        return Headers(headers)


def install() -> None:
    """Make werkzeug's multipart parser use the tolerant decoder (idempotent)."""
    werkzeug.formparser.MultipartDecoder = TolerantMultipartDecoder
