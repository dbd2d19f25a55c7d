"""kombu's filesystem transport, with messages written atomically.

Upstream ``_put`` creates the message file and then writes it, while ``_get`` on another process may
move and read the file in between and crash the worker on an empty JSON document. Here a message is
written to a staging folder on the same file system and renamed into the queue folder, so a reader only
ever sees complete messages.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staging = self.transport_options["staging_folder"]
        try:
            fd, tmp = tempfile.mkstemp(dir=staging, prefix=".msg-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(tmp, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out!r}: {exc}") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel
