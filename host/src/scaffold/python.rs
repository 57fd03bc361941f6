//! The Python plugin folder: `app.py` against the bindings componentize-py
//! generates from `wit/plugin.wit`, the manifest, a README.

pub(super) const GITIGNORE: &str = "/*.wasm\n/bindings/\n__pycache__/\n";

pub(super) const README: &str = r#"# @NAME@

A gantry @KIND@ plugin written in Python. `app.py` is the plugin; it is
made into a WebAssembly component by componentize-py against
`wit/plugin.wit` (world `@KIND@`), the contract of the gantry that
created this folder.

Build and try it:

    pip install componentize-py==@COMPONENTIZE_PY@
    gantry plugin build .
    gantry plugin test . @TEST_ARGS@

`gantry plugin build .` writes `@NAME@.wasm` beside `@NAME@.toml`;
`gantry plugin build . --install` also copies both into the plugin
directory (`.gantry/plugins` by default, or `plugins.dir` in the
config), where a running gantry picks them up.

For your editor, the typed bindings `app.py` imports:

    componentize-py -d wit -w @KIND@ bindings bindings

`@NAME@.toml` says what the plugin may reach: add destinations under
`[capabilities]`, settings under `[settings.NAME]`. A Python component
is about 18 MB and starts an interpreter per call, hence the larger
`[limits]` than a Rust plugin needs.
"#;

pub(super) const HEALTH_CHECK_TEST_ARGS: &str = "--set url=http://127.0.0.1:8080/health";
pub(super) const NOTIFIER_TEST_ARGS: &str = "--set url=http://127.0.0.1:9000/hook";

pub(super) const HEALTH_CHECK_MANIFEST: &str = r#"name = "@NAME@"
kind = "health-check"
version = "0.1.0"
description = "A health check, in Python."

[capabilities]
# Where the plugin may send HTTP requests: scheme://host:port entries, or a
# setting in braces whose value is a URL the operator chose.
http = ["{url}", "{target}"]

[limits]
memory_mib = 64
timeout_ms = 5000

[settings.url]
description = "URL to check; defaults to the target"
[settings.warn_ms]
description = "answers slower than this are a warning"
default = "500"
[settings.crit_ms]
description = "answers slower than this, or none within it, are critical"
default = "2000"
"#;

pub(super) const HEALTH_CHECK_APP: &str = r#""""@NAME@: a gantry health check.

GETs a URL: OK on a 2xx within `warn_ms`, WARNING on a slower 2xx,
CRITICAL on anything else or no answer within `crit_ms`.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, http, log
from wit_world.imports.types import CheckResult, HealthStatus, Level, Metric


class WitWorld(wit_world.WitWorld):
    def check(self, target: str) -> CheckResult:
        url = config.get("url") or target
        if not url:
            return result(HealthStatus.UNKNOWN, "setting `url` is required (or give a target)")
        try:
            warn_ms = int(config.get("warn_ms") or "500")
            crit_ms = int(config.get("crit_ms") or "2000")
        except ValueError as e:
            return result(HealthStatus.UNKNOWN, f"warn_ms and crit_ms are milliseconds: {e}")

        request = http.Request(
            method="GET",
            url=url,
            headers=[],
            body=None,
            timeout_ms=crit_ms,
            follow_redirects=False,
        )
        try:
            response = http.fetch(request)
        except Err as e:
            return result(HealthStatus.CRITICAL, f"{url}: {describe(e.value)}")

        took = response.elapsed_ms
        log.log(Level.DEBUG, f"{url} answered {response.status} in {took} ms")
        time = Metric("time", float(took), "ms", float(warn_ms), float(crit_ms), 0.0, None)
        if not 200 <= response.status < 300:
            return result(HealthStatus.CRITICAL, f"{url} answered {response.status}", time)
        if took > crit_ms:
            return result(HealthStatus.CRITICAL, f"{url} took {took} ms (critical above {crit_ms} ms)", time)
        if took > warn_ms:
            return result(HealthStatus.WARNING, f"{url} took {took} ms (warning above {warn_ms} ms)", time)
        return result(HealthStatus.OK, f"{url} answered {response.status} in {took} ms", time)


def result(status: HealthStatus, message: str, *metrics: Metric) -> CheckResult:
    return CheckResult(status=status, message=message, metrics=list(metrics))


def describe(error: http.HttpError) -> str:
    if isinstance(error, http.HttpError_Denied):
        return f"denied: {error.value}"
    if isinstance(error, http.HttpError_Timeout):
        return "timed out"
    if isinstance(error, http.HttpError_TooLarge):
        return f"response larger than {error.value} bytes"
    if isinstance(error, http.HttpError_InvalidRequest):
        return f"invalid request: {error.value}"
    return f"transport: {error.value}"
"#;

pub(super) const NOTIFIER_MANIFEST: &str = r#"name = "@NAME@"
kind = "notifier"
version = "0.1.0"
description = "An alert channel, in Python."

[capabilities]
http = ["{url}"]
# componentize-py imports every interface of the world; this plugin never
# sends mail, so the import is refused (each call errs) rather than granted.
smtp = false

[limits]
memory_mib = 64
timeout_ms = 10000

[settings.url]
description = "where alerts are POSTed"
required = true
"#;

pub(super) const NOTIFIER_APP: &str = r#""""@NAME@: a gantry notifier that POSTs each notification (a group of
alerts, shaped like Alertmanager's webhook payload) as JSON.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, http
from wit_world.imports.types import (
    AlertState,
    DeliveryError_Permanent,
    DeliveryError_Retry,
    Kv,
    Notification,
    Retry,
)


class WitWorld(wit_world.WitWorld):
    def notify(self, n: Notification) -> None:
        url = config.get("url")
        if not url:
            raise Err(DeliveryError_Permanent("setting `url` is required"))
        body = {
            "receiver": n.receiver,
            "status": state(n.status),
            "groupKey": n.group_key,
            "test": n.test,
            "alerts": [
                {
                    "status": state(a.status),
                    "name": a.name,
                    "summary": a.summary,
                    "fingerprint": a.fingerprint,
                    "labels": {kv.key: kv.value for kv in a.labels},
                }
                for a in n.alerts
            ],
        }
        request = http.Request(
            method="POST",
            url=url,
            headers=[
                Kv("content-type", "application/json"),
                Kv("idempotency-key", n.idempotency_key),
            ],
            body=json.dumps(body).encode(),
            timeout_ms=5000,
            follow_redirects=False,
        )
        try:
            response = http.fetch(request)
        except Err as e:
            error = e.value
            if isinstance(error, (http.HttpError_Denied, http.HttpError_InvalidRequest)):
                raise Err(DeliveryError_Permanent(f"{url}: {error.value}"))
            raise Err(DeliveryError_Retry(Retry(f"{url}: {error}", None)))

        if 200 <= response.status < 300:
            return None
        reason = f"{url} answered {response.status}"
        if response.status == 429 or response.status >= 500:
            raise Err(DeliveryError_Retry(Retry(reason, retry_after(response))))
        raise Err(DeliveryError_Permanent(reason))


def state(s: AlertState) -> str:
    return "firing" if s == AlertState.FIRING else "resolved"


def retry_after(response: http.Response):
    for kv in response.headers:
        if kv.key.lower() == "retry-after" and kv.value.strip().isdigit():
            return int(kv.value.strip())
    return None
"#;
