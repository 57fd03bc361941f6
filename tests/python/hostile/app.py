"""A Python health check that misbehaves on request (setting `mode`), to
prove the sandbox holds for Python guests as it does for Rust ones."""

import os
import socket
import time

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, http
from wit_world.imports.types import CheckResult, HealthStatus


class WitWorld(wit_world.WitWorld):
    def check(self, target: str) -> CheckResult:
        mode = config.get("mode")
        if mode == "ok":
            return CheckResult(HealthStatus.OK, "fine", [])
        if mode == "loop":
            n = 0
            while True:
                n += 1
        if mode == "hog":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "raise":
            return explode(config.get("url") or "nothing")
        if mode == "fetch":
            return fetch(config.get("url") or "")
        if mode == "sleep":
            time.sleep(3600)
            return CheckResult(HealthStatus.OK, "slept an hour", [])
        if mode == "snoop":
            return snoop()
        return CheckResult(HealthStatus.UNKNOWN, f"unknown mode {mode!r}", [])


def explode(what: str) -> CheckResult:
    raise ValueError(f"hostile plugin raised on purpose about {what}")


def fetch(url: str) -> CheckResult:
    request = http.Request("GET", url, [], None, 2000, True)
    try:
        response = http.fetch(request)
    except Err as e:
        return CheckResult(HealthStatus.CRITICAL, f"error: {e.value}", [])
    return CheckResult(HealthStatus.OK, f"status {response.status}", [])


def snoop() -> CheckResult:
    opened = []
    for path in ["/etc/passwd", "/", ".", "/proc/self/environ"]:
        try:
            os.stat(path)
            opened.append(f"file {path}")
        except OSError:
            pass
    try:
        with open("escape.txt", "w") as f:
            f.write("out")
        opened.append("file write")
    except OSError:
        pass
    if os.environ:
        opened.append("env " + ",".join(os.environ))
    addr = config.get("connect")
    if addr:
        host, port = addr.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            opened.append(f"socket {addr}")
        except Exception:
            pass
    if opened:
        return CheckResult(HealthStatus.CRITICAL, "opened: " + "; ".join(opened), [])
    return CheckResult(HealthStatus.OK, "nothing opened", [])
