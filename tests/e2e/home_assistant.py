"""A real Home Assistant in a child process, on a fresh config folder, and its REST API.

Started from the test's own Python (the project's .venv) with this checkout's
integration linked into the config folder, onboarded through the REST onboarding
API, and always stopped with its whole process group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from demo.home_assistant import free_port, prepare_temporary_config

USERNAME = "e2e"
PASSWORD = "end-to-end-test-password"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class RestError(AssertionError):
    """Home Assistant answered a REST call with an error status."""


@dataclass(frozen=True, slots=True)
class Response:
    """A REST answer: its status, headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a redirect back to the caller instead of following it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Follow no redirect: the caller sees the 3xx answer."""
        return


_OPENER = urllib.request.build_opener(_NoRedirects)


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Response:
    """Send one HTTP request to the Home Assistant under test; never raise on a status.

    Redirects are not followed: a device must see where it is sent.
    """
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the end-to-end test only talks to 127.0.0.1, not {url}")
    req = urllib.request.Request(  # noqa: S310 (checked above: http to 127.0.0.1)
        url, data=body, method=method, headers=headers or {}
    )
    try:
        with _OPENER.open(req, timeout=10) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, dict(err.headers), err.read())


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := probe():
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class HomeAssistantApi:
    """The REST API of the Home Assistant under test, as the onboarded user."""

    def __init__(self, url: str, access_token: str) -> None:
        """Talk to `url` with a user's access token."""
        self.url = url
        self._auth = {"Authorization": f"Bearer {access_token}"}

    def get(self, path: str) -> Any:
        """GET a path and return its JSON."""
        return self._checked("GET", path, None)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        """POST JSON to a path and return its JSON."""
        return self._checked("POST", path, data)

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """Return an entity's state object, or None while it does not exist."""
        answer = request(f"{self.url}/api/states/{entity_id}", headers=self._auth)
        if answer.status == 404:
            return None
        self._raise_for(answer, f"GET /api/states/{entity_id}")
        state: dict[str, Any] = answer.json()
        return state

    def state_value(self, entity_id: str) -> str:
        """Return an entity's state; fail when the entity does not exist."""
        state = self.state(entity_id)
        assert state is not None, f"{entity_id} does not exist"
        value: str = state["state"]
        return value

    def call_service(
        self, domain: str, service: str, data: dict[str, Any], *, response: bool = False
    ) -> Any:
        """Call an action; with `response`, return its service response."""
        query = "?return_response" if response else ""
        result = self.post(f"/api/services/{domain}/{service}{query}", data)
        return result["service_response"] if response else result

    def config_entries(self, domain: str) -> list[dict[str, Any]]:
        """Return the config entries of an integration."""
        entries: list[dict[str, Any]] = self.get(
            f"/api/config/config_entries/entry?domain={domain}"
        )
        return entries

    def _checked(self, method: str, path: str, data: dict[str, Any] | None) -> Any:
        headers = dict(self._auth)
        body = None
        if data is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(data).encode()
        answer = request(f"{self.url}{path}", method=method, headers=headers, body=body)
        self._raise_for(answer, f"{method} {path}")
        return answer.json()

    @staticmethod
    def _raise_for(answer: Response, what: str) -> None:
        if answer.status >= 400:
            raise RestError(f"{what} answered {answer.status}: {answer.body[:500]!r}")


@dataclass(frozen=True, slots=True)
class RunningHomeAssistant:
    """A started and onboarded Home Assistant."""

    url: str
    config_dir: Path
    api: HomeAssistantApi

    @property
    def log(self) -> Path:
        """Return Home Assistant's log file."""
        return self.config_dir / "home-assistant.log"


def _child_environment() -> dict[str, str]:
    """Return the environment for Home Assistant, without pytest-cov's subprocess hooks.

    The integration's coverage is measured in-process by the rest of the suite; the
    child must not write coverage data of its own.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COV_CORE_", "COVERAGE_"))
    }


def start_process(config_dir: Path) -> subprocess.Popen[bytes]:
    """Start Home Assistant on `config_dir`; its console output goes to console.log there."""
    with (config_dir / "console.log").open("ab") as console:
        return subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            [
                sys.executable,
                "-m",
                "homeassistant",
                "--config",
                str(config_dir),
                "--skip-pip",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
            start_new_session=True,
        )


@contextmanager
def running_home_assistant(logs_to: Path) -> Iterator[RunningHomeAssistant]:
    """Start Home Assistant on a fresh config folder, onboard it, and stop it afterwards.

    Its logs are copied to `logs_to` before the config folder is removed.
    """
    config_dir = Path(tempfile.mkdtemp(prefix="providore-e2e-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        prepare_temporary_config(config_dir, url, port, "Providore end-to-end")
        process = start_process(config_dir)
        wait_until_serving(url, process)
        yield RunningHomeAssistant(
            url=url, config_dir=config_dir, api=HomeAssistantApi(url, onboard(url))
        )
    finally:
        if process is not None:
            stop(process)
        keep_logs(config_dir, logs_to)
        shutil.rmtree(config_dir, ignore_errors=True)


def keep_logs(config_dir: Path, logs_to: Path) -> None:
    """Copy Home Assistant's logs out of a config folder."""
    for log in ("console.log", "home-assistant.log"):
        if (config_dir / log).exists():
            shutil.copy(config_dir / log, logs_to / log)


def wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the onboarding API answers (the HTTP server and frontend are up)."""

    def serving() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Home Assistant exited with {process.returncode}")
        try:
            return request(f"{url}/api/onboarding").status == 200
        except OSError:
            return False

    wait_for("Home Assistant to answer", serving, START_TIMEOUT)


def create_owner(url: str) -> str:
    """Create the owner (onboarding's first step); return the owner's access token."""
    client_id = f"{url}/"
    auth_code = _post_json(
        url,
        "/api/onboarding/users",
        {
            "client_id": client_id,
            "name": "End-to-end",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        },
    )["auth_code"]
    token_answer = request(
        f"{url}/auth/token",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": auth_code,
                "client_id": client_id,
            }
        ).encode(),
    )
    if token_answer.status != 200:
        raise RestError(f"POST /auth/token answered {token_answer.status}")
    token: str = token_answer.json()["access_token"]
    return token


def onboard(url: str) -> str:
    """Create the owner and finish every onboarding step; return the owner's access token."""
    token = create_owner(url)
    _post_json(url, "/api/onboarding/core_config", {}, token)
    _post_json(url, "/api/onboarding/analytics", {}, token)
    _post_json(
        url,
        "/api/onboarding/integration",
        {"client_id": f"{url}/", "redirect_uri": f"{url}/?auth_callback=1"},
        token,
    )
    return token


def _post_json(
    url: str, path: str, data: dict[str, Any], token: str | None = None
) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    answer = request(
        f"{url}{path}", method="POST", headers=headers, body=json.dumps(data).encode()
    )
    if answer.status != 200:
        raise RestError(f"POST {path} answered {answer.status}: {answer.body!r}")
    return answer.json()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop Home Assistant and everything it started: SIGTERM, then SIGKILL."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    kill(process)


def kill(process: subprocess.Popen[bytes]) -> None:
    """Kill Home Assistant and everything it started at once (SIGKILL), as a power cut would."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
