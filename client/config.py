"""Where the service is and which token to use: --url/--token, else XRAY_URL/XRAY_TOKEN, else the config
file (``~/.config/xray/config.toml``: ``url = "..."`` and ``token = "..."``), else the embedded default."""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclasses.dataclass(frozen=True)
class Config:
    url: str
    token: str | None


def config_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "xray" / "config.toml"


def load(url: str | None = None, token: str | None = None, path: Path | None = None) -> Config:
    stored: dict = {}
    path = path or config_file()
    if path.is_file():
        with open(path, "rb") as handle:
            stored = tomllib.load(handle)
    return Config(url=(url or os.environ.get("XRAY_URL") or stored.get("url") or DEFAULT_URL).rstrip("/"),
                  token=token or os.environ.get("XRAY_TOKEN") or stored.get("token"))
