"""How a node finds its directory: connection settings and the small local bootstrap file.

The bootstrap file is TOML and holds only what a node needs before it can read the
cluster's configuration from LDAP:

    [directory]
    url = "ldap://127.0.0.1:38901"          # or urls = [...] tried in order
    base_dn = "dc=pyha,dc=test"
    bind_dn = "cn=admin,dc=pyha,dc=test"
    password_file = "admin.password"        # relative to this file; or password_env
    cluster = "pyha"                        # cn of the cluster entry under base_dn
    starttls = false                        # ldaps:// URLs use TLS from the start
    ca_file = "ca.crt"                      # CA for the server certificate
    watch = "auto"                          # auto | sync (RFC 4533) | poll (contextCSN)

    [node]
    name = "n1"
    state_dir = "/var/lib/pyha"
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pyha.errors import ConfigError
from pyha.model.config import config_error

log = logging.getLogger("pyha.directory")

PASSWORD_ENV = "PYHA_DIRECTORY_PASSWORD"  # noqa: S105 - the variable name, not a password


class DirectorySettings(BaseModel):
    """How to reach and bind to the LDAP directory; the password never shows in reprs or logs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urls: tuple[str, ...] = Field(min_length=1)
    base_dn: str = Field(min_length=1)
    bind_dn: str = ""
    password: SecretStr = SecretStr("")
    cluster: str | None = None
    starttls: bool = False
    ca_file: Path | None = None
    timeout: float = Field(default=5.0, gt=0)
    watch: Literal["auto", "sync", "poll"] = "auto"
    poll_interval: float = Field(default=0.5, gt=0)
    page_size: int = Field(default=1000, ge=1)
    state_dir: Path | None = None
    """Where the watcher keeps its sync cookie, so a restart resumes."""

    @field_validator("urls")
    @classmethod
    def _ldap_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parsed = urlparse(url)
            if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL with a host")
        return urls

    def describe(self) -> str:
        """The first URL and the base DN, for logs."""
        return f"{self.urls[0]} {self.base_dn}"


def read_password(password_file: Path | None = None, password_env: str | None = None) -> SecretStr:
    """The bind password from a file (first line) or an environment variable."""
    if password_file is not None:
        try:
            text = password_file.read_text()
        except OSError as exc:
            raise ConfigError(f"{password_file}: cannot read the password file: "
                              f"{exc.strerror}") from None
        if password_file.stat().st_mode & 0o077:
            log.warning("%s can be read by other users; chmod 600 it", password_file)
        return SecretStr(text.splitlines()[0] if text else "")
    name = password_env or PASSWORD_ENV
    return SecretStr(os.environ.get(name, ""))


class Bootstrap(BaseModel):
    """The bootstrap file: directory settings, and this node's name and state dir."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    directory: DirectorySettings
    node: str | None = None
    state_dir: Path | None = None


_DIRECTORY_KEYS = {"url", "urls", "base_dn", "bind_dn", "password_file", "password_env",
                   "cluster", "starttls", "ca_file", "timeout", "watch", "poll_interval",
                   "page_size"}


def _directory_section(data: dict[str, Any], folder: Path, source: str) -> DirectorySettings:
    unknown = sorted(set(data) - _DIRECTORY_KEYS)
    if unknown:
        raise ConfigError(f"{source}: [directory]: unknown keys {', '.join(unknown)}")
    urls = data.get("urls") or data.get("url") or ()
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    pw_file = data.get("password_file")
    password = read_password(folder / pw_file if pw_file else None, data.get("password_env"))
    fields = {k: v for k, v in data.items() if k in DirectorySettings.model_fields}
    if "ca_file" in fields:
        fields["ca_file"] = folder / fields["ca_file"]
    try:
        return DirectorySettings.model_validate({**fields, "urls": urls, "password": password})
    except ValidationError as exc:
        raise config_error(exc, f"{source} [directory]") from None


def load_bootstrap(path: Path) -> Bootstrap:
    """Read a bootstrap file; relative paths in it are relative to the file."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "directory" not in data:
        raise ConfigError(f"{path}: a [directory] section is required")
    node = data.get("node", {})
    state_dir = node.get("state_dir")
    settings = _directory_section(data["directory"], path.parent, str(path))
    if state_dir:
        settings = settings.model_copy(update={"state_dir": Path(state_dir)})
    return Bootstrap(directory=settings, node=node.get("name"),
                     state_dir=Path(state_dir) if state_dir else None)


def write_bootstrap(path: Path, settings: DirectorySettings, password_file: Path,
                    node: str | None = None) -> None:
    """Write a bootstrap file for `settings` (the password stays in its own file)."""
    lines = ["[directory]", f"urls = [{', '.join(_q(u) for u in settings.urls)}]",
             f"base_dn = {_q(settings.base_dn)}", f"bind_dn = {_q(settings.bind_dn)}",
             f"password_file = {_q(str(password_file))}"]
    if settings.cluster:
        lines.append(f"cluster = {_q(settings.cluster)}")
    if settings.starttls:
        lines.append("starttls = true")
    if settings.ca_file:
        lines.append(f"ca_file = {_q(str(settings.ca_file))}")
    if node:
        lines += ["", "[node]", f"name = {_q(node)}"]
    path.write_text("\n".join(lines) + "\n")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
