"""web/multipart.py replaces werkzeug's multipart decoder for one reason. These tests fail when werkzeug
changes: when it no longer looks the decoder up by module name (the patch would do nothing), when the
method the patch overrides goes away, or when werkzeug itself keeps a form with a bad byte in a file name
(the patch can then be removed)."""
import inspect
import io

import werkzeug.formparser
from werkzeug.sansio import multipart as sansio_multipart
from werkzeug.test import EnvironBuilder

from web.multipart import TolerantMultipartDecoder, install

BODY = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"caf\xe9.png\"\r\n"
        b"Content-Type: image/png\r\n\r\nPNGDATA\r\n--b--\r\n")


def _files_parsed_with(decoder) -> list[str]:
    previous = werkzeug.formparser.MultipartDecoder
    werkzeug.formparser.MultipartDecoder = decoder
    try:
        environ = EnvironBuilder(method="POST", input_stream=io.BytesIO(BODY),
                                 content_type="multipart/form-data; boundary=b", content_length=len(BODY)).get_environ()
        _, _, files = werkzeug.formparser.parse_form_data(environ)
        return [f.filename for f in files.getlist("files")]
    finally:
        werkzeug.formparser.MultipartDecoder = previous


def test_werkzeug_still_drops_the_whole_form_on_a_bad_byte_and_the_patch_keeps_it():
    assert _files_parsed_with(sansio_multipart.MultipartDecoder) == []  # upstream fixed it: remove web/multipart.py
    assert _files_parsed_with(TolerantMultipartDecoder) == ["caf\ufffd.png"]


def test_werkzeug_still_builds_its_decoder_by_the_module_name_the_patch_replaces():
    assert "MultipartDecoder(" in inspect.getsource(werkzeug.formparser.MultiPartParser.parse)
    assert "_parse_headers" in vars(sansio_multipart.MultipartDecoder)
    install()
    assert werkzeug.formparser.MultipartDecoder is TolerantMultipartDecoder
