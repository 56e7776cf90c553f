"""The JVM host process: Java plugins in a JVM through JPype, served to the cluster server.

Run as `python -m pyha.jvm.host`, one per node, by pyha.jvm.supervisor. This is the only
module of pyha that calls `jpype.startJVM`; a JVM cannot be restarted within a process,
so a hung or broken plugin costs this process, never the cluster server.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hmac
import json
import logging
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyha.jvm.channel import ChannelError, Message, peer_uid, read_frame, write_frame

__all__ = ["PluginTable", "directory_access", "main", "meta_to_dict", "start_jvm"]

_LOG = logging.getLogger("pyha.jvm.host")
_LEVELS = ("debug", "info", "warning", "error")


def start_jvm(java_home: Path, classpath: Sequence[Path], options: Sequence[str] = ()) -> None:
    """Start this process's one JVM from `java_home` with `classpath` (the SPI jar)."""
    import jpype

    libjvm = java_home / "lib" / "server" / "libjvm.so"
    if not libjvm.is_file():
        raise FileNotFoundError(f"no JVM at {libjvm}; is {java_home} a JDK?")
    jpype.startJVM(
        str(libjvm),
        "-Djava.awt.headless=true",
        *options,
        classpath=[str(p) for p in classpath],
        convertStrings=False,
    )


# ---------------------------------------------------------------- plugins


def meta_to_dict(meta: Any) -> dict[str, Any]:
    """A Java io.pyha.spi.MetaData as the fields of pyha's MetaData (seconds, not millis)."""
    return {
        "name": str(meta.name()),
        "version": str(meta.version()),
        "description": str(meta.description()),
        "promotable": bool(meta.promotable()),
        "parameters": [_parameter(p) for p in meta.parameters()],
        "operations": [
            {
                "name": str(o.name()),
                "timeout": int(o.timeoutMillis()) / 1000,
                "interval": int(o.intervalMillis()) / 1000,
            }
            for o in meta.operations()
        ],
    }


def _parameter(param: Any) -> dict[str, Any]:
    default = param.defaultValue()
    return {
        "name": str(param.name()),
        "type": str(param.type().wireName()),
        "required": bool(param.required()),
        "default": None if default is None else str(default),
        "description": str(param.description()),
        "secret": bool(param.secret()),
        "options": [str(o) for o in param.options()],
    }


@dataclass(frozen=True)
class Loaded:
    """A plugin instance found in a jar, with its type name and meta data."""

    type: str
    jar: str
    klass: str
    plugin: Any
    meta: dict[str, Any]


class PluginTable:
    """The plugins of the given jars, by full type name (`java:<provider>:<name>`).

    Invariant: type names are unique (a later duplicate is an error, not a replacement);
    a provider that failed to load, or whose metaData() threw, is listed in `errors`.
    """

    def __init__(self, jars: Sequence[str]) -> None:
        from jpype import JClass

        loader = JClass("io.pyha.host.PluginLoader")
        self.plugins: dict[str, Loaded] = {}
        self.errors: list[dict[str, Any]] = []
        for jar in jars:
            for found in loader.load(jar):
                self._add(jar, found)

    def _add(self, jar: str, found: Any) -> None:
        klass = None if found.className() is None else str(found.className())
        if found.error() is not None:
            self._error(jar, klass, str(found.error()))
            return
        try:
            java_meta = found.plugin().metaData()
            meta = meta_to_dict(java_meta)
            full = f"java:{java_meta.provider()}:{meta['name']}"
        except Exception as exc:  # a Java exception from the plugin's metaData()
            self._error(jar, klass, f"metaData() threw {_java_error(exc)}")
            return
        if full in self.plugins:
            self._error(jar, klass, f"{full} is already provided by {self.plugins[full].jar}")
            return
        self.plugins[full] = Loaded(full, jar, klass or "", found.plugin(), meta)

    def _error(self, jar: str, klass: str | None, reason: str) -> None:
        self.errors.append({"jar": jar, "class": klass, "reason": reason})

    def listing(self) -> dict[str, Any]:
        """Every plugin with its jar, class and meta data, and every error: JSON-ready."""
        plugins = [
            {"type": p.type, "jar": p.jar, "class": p.klass, "meta": p.meta}
            for p in self.plugins.values()
        ]
        return {"plugins": plugins, "errors": self.errors}


def _java_error(exc: BaseException) -> str:
    """'java.lang.IllegalStateException: why' for a Java exception, else Python's text."""
    get_class = getattr(exc, "getClass", None)
    if callable(get_class):
        message = exc.getMessage()  # type: ignore[attr-defined]
        name = str(get_class().getName())
        return name if message is None else f"{name}: {message}"
    return f"{type(exc).__name__}: {exc}"


def _java_trace(exc: BaseException) -> str:
    stacktrace = getattr(exc, "stacktrace", None)
    if callable(stacktrace):
        return str(stacktrace())
    return "".join(traceback.format_exception(exc))


# ---------------------------------------------------------------- serving


class _ChannelLogger:
    """Implements io.pyha.spi.PluginLogger: each line goes to the server as a log message."""

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._emit = emit

    def debug(self, message: Any) -> None:
        self._emit("debug", str(message))

    def info(self, message: Any) -> None:
        self._emit("info", str(message))

    def warning(self, message: Any) -> None:
        self._emit("warning", str(message))

    def error(self, message: Any) -> None:
        self._emit("error", str(message))


@functools.cache
def _logger_class() -> Any:
    """_ChannelLogger made a Java proxy; only possible once the JVM runs."""
    from jpype import JImplements, JOverride

    methods = {level: JOverride(getattr(_ChannelLogger, level)) for level in _LEVELS}
    proxy = type("JavaChannelLogger", (_ChannelLogger,), methods)
    return JImplements("io.pyha.spi.PluginLogger")(proxy)


class _BadRequest(Exception):
    """A request is missing a field or has one of the wrong type."""


def _field(message: Message, key: str, kind: type, default: Any = None) -> Any:
    value = message.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise _BadRequest(f"{key!r} must be a {kind.__name__}")
    return value


class Session:
    """One connection from the cluster server.

    Invariant: nothing but `hello` is answered until the peer sent the right token
    (and runs as our user); every request gets exactly one final reply, and writes
    never interleave.
    """

    def __init__(self, sock: socket.socket, token: str, table: PluginTable) -> None:
        self._sock = sock
        self._token = token
        self._table = table
        self._write = threading.Lock()
        self._running: dict[int, Any] = {}
        self._guard = threading.Lock()
        self._directory: Any = None
        """The io.pyha.host.DirectoryAccess the server's hello gave, or None."""

    def serve(self) -> None:
        """Authenticate, then answer requests until the peer closes the channel."""
        try:
            if self._authenticated():
                while (message := read_frame(self._sock)) is not None:
                    self._handle(message)
        except ChannelError as exc:
            _LOG.warning("channel closed: %s", exc)
        finally:
            self._cancel_all()
            self._sock.close()

    def send(self, message: Message) -> None:
        """Send one message to the server; a closed channel drops it."""
        with self._write, contextlib.suppress(ChannelError):
            write_frame(self._sock, message)

    def _authenticated(self) -> bool:
        hello = read_frame(self._sock)
        if hello is None:
            return False
        token = hello.get("token")
        if (
            hello.get("op") != "hello"
            or not isinstance(token, str)
            or not hmac.compare_digest(token.encode(), self._token.encode())
            or peer_uid(self._sock) != os.getuid()
        ):
            _LOG.warning("refused a connection: wrong token, request or user")
            self.send({"id": hello.get("id"), "ok": False, "error": "not authenticated"})
            return False
        reply: Message = {"id": hello.get("id"), "ok": True, "pid": os.getpid(),
                          "java": _java_version()}
        if hello.get("directory") is not None:
            reply["directory"] = self._connect_directory(hello["directory"])
        self.send(reply)
        return True

    def _connect_directory(self, spec: Any) -> str:
        """Keep how plugins open the directory; what it is, or why not (never the password).
        Operations already running keep the directory they started with."""
        if spec is None:
            self._directory = None
            return "no directory"
        try:
            self._directory = directory_access(spec)
        except Exception as exc:  # a bad spec or CA file: plugins get no directory
            self._directory = None
            _LOG.warning("plugins get no directory: %s", _java_error(exc))
            return f"none: {_java_error(exc)}"
        return str(self._directory.toString())

    def _handle(self, message: Message) -> None:
        op, ident = message.get("op"), message.get("id")
        if op == "cancel":
            self._cancel(message.get("target"))
            return
        handlers: dict[str, Callable[[Message], Message]] = {
            "ping": lambda m: {"ok": True, "pid": os.getpid()},
            "list": lambda m: {"ok": True, **self._table.listing()},
            "validate": self._validate,
            "invoke": self._invoke,
            "directory": lambda m: {"ok": True,
                                    "directory": self._connect_directory(m.get("directory"))},
        }
        handler = handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            self.send(
                {"id": ident, "ok": False, "kind": "bad-request", "error": f"unknown op {op!r}"}
            )
        elif op in ("ping", "list", "directory"):
            self._answer(ident, handler, message)
        else:
            threading.Thread(
                target=_detaching(self._answer),
                args=(ident, handler, message),
                daemon=True,
                name=f"pyha-jvm {op} {ident}",
            ).start()

    def _answer(self, ident: Any, handler: Callable[[Message], Message], message: Message) -> None:
        try:
            reply = handler(message)
        except _BadRequest as exc:
            reply = {"ok": False, "kind": "bad-request", "error": str(exc)}
        except Exception as exc:  # whatever a plugin throws is its caller's failure, not ours
            reply = {"ok": False, "kind": "exception", "error": _java_error(exc)}
        self.send({**reply, "id": ident})

    def _plugin(self, message: Message) -> Loaded:
        name = _field(message, "plugin", str)
        loaded = self._table.plugins.get(name)
        if loaded is None:
            raise _NoPlugin(name)
        return loaded

    def _validate(self, message: Message) -> Message:
        from jpype import JClass

        try:
            loaded = self._plugin(message)
        except _NoPlugin as exc:
            return exc.reply()
        params = JClass("java.util.HashMap")()
        for key, value in _params(message).items():
            params.put(key, value)
        return {"ok": True, "problems": [str(p) for p in loaded.plugin.validate(params)]}

    def _invoke(self, message: Message) -> Message:
        try:
            loaded = self._plugin(message)
        except _NoPlugin as exc:
            return exc.reply()
        ident = message["id"]
        resource = _field(message, "resource", str)
        invocation = self._invocation(loaded, message, resource)
        with self._guard:
            self._running[ident] = invocation
        try:
            return {"ok": True, "code": int(invocation.run())}
        except Exception as exc:
            self._log(ident, resource, "debug", f"{loaded.type} threw:\n{_java_trace(exc)}")
            return {"ok": False, "kind": "exception", "error": _java_error(exc)}
        finally:
            with self._guard:
                self._running.pop(ident, None)

    def _invocation(self, loaded: Loaded, message: Message, resource: str) -> Any:
        from jpype import JClass

        ident = message["id"]
        params = JClass("java.util.HashMap")()
        for key, value in _params(message).items():
            params.put(key, value)
        logger = _logger_class()(lambda level, text: self._log(ident, resource, level, text))
        return JClass("io.pyha.host.Invocation")(
            loaded.plugin,
            _field(message, "operation", str),
            resource,
            _field(message, "node", str, "local"),
            params,
            _field(message, "timeout_ms", int),
            _field(message, "interval_ms", int, 0),
            _field(message, "state_dir", str, "/run/pyha"),
            logger,
            self._directory,
        )

    def _log(self, ident: Any, resource: str, level: str, text: str) -> None:
        self.send({"id": ident, "log": {"level": level, "message": text, "resource": resource}})

    def _cancel(self, target: Any) -> None:
        with self._guard:
            invocation = self._running.get(target) if isinstance(target, int) else None
        if invocation is not None:
            invocation.cancel()

    def _cancel_all(self) -> None:
        with self._guard:
            running = list(self._running.values())
        for invocation in running:
            invocation.cancel()


def directory_access(spec: Any) -> Any:
    """An io.pyha.host.DirectoryAccess from the `directory` of the server's hello:
    {"kind": "ldap", "urls", "cluster_dn", "bind_dn", "password", "starttls", "ca_file",
    "timeout_ms"} or {"kind": "tree", "path"}; ValueError if it is neither."""
    from jpype import JClass

    access = JClass("io.pyha.host.DirectoryAccess")
    if not isinstance(spec, dict):
        raise ValueError("the directory must be a JSON object")
    if spec.get("kind") == "tree" and isinstance(spec.get("path"), str):
        return access.tree(spec["path"])
    if spec.get("kind") != "ldap":
        raise ValueError(f"unknown directory kind {spec.get('kind')!r}")
    urls = JClass("java.util.ArrayList")()
    for url in spec.get("urls") or ():
        urls.add(str(url))
    ca_file = spec.get("ca_file")
    return access.ldap(
        urls,
        str(spec.get("cluster_dn", "")),
        str(spec.get("bind_dn", "")),
        str(spec.get("password", "")),
        bool(spec.get("starttls")),
        None if ca_file is None else str(ca_file),
        int(spec.get("timeout_ms", 5000)),
    )


def _detaching(work: Callable[..., None]) -> Callable[..., None]:
    """`work`, then the thread leaves the JVM (JPype attaches threads on their first call,
    and a Python thread that ends attached leaks its Java side)."""

    def run(*args: Any) -> None:
        try:
            work(*args)
        finally:
            from jpype import JClass

            JClass("java.lang.Thread").detach()

    return run


class _NoPlugin(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def reply(self) -> Message:
        return {
            "ok": False,
            "kind": "no-plugin",
            "error": f"the JVM host has no plugin {self.name}",
        }


def _params(message: Message) -> dict[str, str]:
    params: dict[str, str] = _field(message, "params", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise _BadRequest("'params' must map names to strings")
    return params


def _java_version() -> str:
    from jpype import JClass

    return str(JClass("java.lang.System").getProperty("java.version"))


# ---------------------------------------------------------------- the process


def listen(path: Path) -> socket.socket:
    """A Unix socket at `path`, readable and writable by our user only (mode 0600)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # no moment exists where the socket is open to others
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(8)
    return sock


def _serve(listener: socket.socket, token: str, table: PluginTable) -> None:
    while True:
        conn, _ = listener.accept()
        session = Session(conn, token, table)
        serve = _detaching(session.serve)
        threading.Thread(target=serve, name="pyha-jvm session", daemon=True).start()


def _read_token(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 256)
        if not chunk:
            raise SystemExit("pyha-jvm-host: no token on the token pipe")
        data += chunk
    return data.decode().strip()


def _watch_lifeline(fd: int) -> None:
    """Exit as soon as the server's end of the token pipe closes (the server is gone)."""

    def watch() -> None:
        while os.read(fd, 256):
            pass
        _LOG.info("the cluster server went away; exiting")
        os._exit(0)

    threading.Thread(target=watch, name="pyha-jvm lifeline", daemon=True).start()


def _ready(fd: int, message: Message) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())
    os.close(fd)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pyha.jvm.host", description=__doc__)
    parser.add_argument("--java-home", type=Path, required=True)
    parser.add_argument("--spi", type=Path, required=True, help="the pyha-spi jar")
    parser.add_argument("--jar", action="append", default=[], help="a plugin jar (repeatable)")
    parser.add_argument("--jvm-option", action="append", default=[])
    parser.add_argument("--list", action="store_true", help="print the plugins as JSON, exit")
    parser.add_argument("--socket", type=Path)
    parser.add_argument("--token-fd", type=int)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    if not args.list and None in (args.socket, args.token_fd, args.ready_fd):
        parser.error("--socket, --token-fd and --ready-fd are required unless --list")
    return args


def _own_stdout() -> int:
    """A private copy of stdout; fd 1 then points at stderr, so System.out cannot corrupt it."""
    out = os.dup(1)
    os.dup2(2, 1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The host's entry point; see the module docstring."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s pyha-jvm-host[{os.getpid()}] %(levelname)s %(message)s",
    )
    args = _parse(argv)
    out = _own_stdout()
    if args.list:
        start_jvm(args.java_home, [args.spi], args.jvm_option)
        os.write(out, json.dumps(PluginTable(args.jar).listing()).encode())
        return 0
    token = _read_token(args.token_fd)
    try:
        listener = listen(args.socket)
        start_jvm(args.java_home, [args.spi], args.jvm_option)
        table = PluginTable(args.jar)
    except Exception as exc:  # tell the server why, instead of just dying
        _ready(args.ready_fd, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _ready(args.ready_fd, {"ok": True, "pid": os.getpid(), "plugins": len(table.plugins)})
    _watch_lifeline(args.token_fd)
    _serve(listener, token, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
