"""GitHub Actions around segsync: the runner's files, the pull-request comment, the state push.

Used by ``segsync github plan|apply|drift`` (what the composite action ``action.yml`` runs):

- :class:`Runner` reads the environment a runner sets (``GITHUB_OUTPUT``,
  ``GITHUB_STEP_SUMMARY``, ``GITHUB_EVENT_PATH``, ``GITHUB_REF``, …) and writes outputs and
  the job summary;
- :class:`Comments` keeps one plan comment per pull request, found by a hidden marker *and*
  its author, through GitHub's REST API (a fork's read-only token is not an error);
- :class:`Git` brings a checkout to the tip of a branch and pushes the state with a
  fetch-rebase-retry loop, merging concurrent state changes entry by entry.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from segsync import __version__
from segsync.errors import SegsyncError

MARKER: Final = "<!-- segsync-plan"
DEFAULT_AUTHOR: Final = "github-actions[bot]"
#: GitHub refuses comments over 65,536 characters (the markdown plan stays well below).
COMMENT_LIMIT: Final = 65_536


class GitError(SegsyncError):
    """A git command failed."""


@dataclass(frozen=True)
class Runner:
    """What a GitHub Actions runner tells a step through its environment."""

    env: Mapping[str, str]

    @classmethod
    def from_environment(cls) -> Runner:
        return cls(dict(os.environ))

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, default)

    @property
    def event(self) -> dict[str, Any]:
        path = self.get("GITHUB_EVENT_PATH")
        if not path:
            return {}
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def pull_request(self) -> int | None:
        """The pull request's number on a ``pull_request`` event, else None."""
        pr = self.event.get("pull_request")
        number = pr.get("number") if isinstance(pr, dict) else None
        return number if isinstance(number, int) else None

    @property
    def default_branch(self) -> str:
        repo = self.event.get("repository")
        branch = repo.get("default_branch") if isinstance(repo, dict) else None
        return branch if isinstance(branch, str) and branch else "main"

    @property
    def run_url(self) -> str:
        server = self.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{self.get('GITHUB_REPOSITORY')}/actions/runs/{self.get('GITHUB_RUN_ID')}"

    def output(self, name: str, value: str) -> None:
        """One step output (``GITHUB_OUTPUT``), multi-line values in a heredoc."""
        path = self.get("GITHUB_OUTPUT")
        if not path:
            return
        delimiter = "segsync-eof"
        while delimiter in value:
            delimiter += "-"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")

    def summary(self, markdown: str) -> None:
        """Add ``markdown`` to the job summary (``GITHUB_STEP_SUMMARY``)."""
        path = self.get("GITHUB_STEP_SUMMARY")
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(markdown if markdown.endswith("\n") else markdown + "\n")


def marker(key: str) -> str:
    """The hidden first line that finds this plan's comment again (one per specs folder)."""
    return f"{MARKER} {key} -->"


class Comments:
    """One comment per pull request and key, found by its marker and its author."""

    def __init__(
        self,
        runner: Runner,
        token: str,
        *,
        author: str = DEFAULT_AUTHOR,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._author = author
        self._repo = runner.get("GITHUB_REPOSITORY")
        self._http = httpx.Client(
            base_url=runner.get("GITHUB_API_URL", "https://api.github.com").rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"segsync/{__version__}",
            },
            timeout=30.0,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def upsert(self, number: int, key: str, body: str) -> str:
        """Create or update the comment; ``created``, ``updated`` or ``skipped: <why>``."""
        head = marker(key)
        text = f"{head}\n{body}"
        try:
            mine = self._find(number, head)
            if mine is None:
                self._check(self._http.post(
                    f"repos/{self._repo}/issues/{number}/comments", json={"body": text}
                ))
                return "created"
            self._check(self._http.patch(
                f"repos/{self._repo}/issues/comments/{mine}", json={"body": text}
            ))
            return "updated"
        except _Refused as exc:
            return f"skipped: {exc}"

    def _find(self, number: int, head: str) -> int | None:
        url: str | None = f"repos/{self._repo}/issues/{number}/comments?per_page=100"
        while url:
            response = self._check(self._http.get(url))
            for comment in response.json():
                user = comment.get("user") or {}
                body = comment.get("body") or ""
                if body.startswith(head) and user.get("login") == self._author:
                    return int(comment["id"])
            url = response.links.get("next", {}).get("url")
        return None

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code in (401, 403, 404):
            raise _Refused(
                f"GitHub answered {response.status_code} (a fork's pull request gets a "
                "read-only token); the plan is in the job summary"
            )
        if response.status_code >= 400:
            raise _Refused(f"GitHub answered {response.status_code}: {response.text[:200]}")
        return response


class _Refused(Exception):
    """GitHub did not let the comment be written."""


class Git:
    """The git commands of the apply job, run in ``cwd``; every failure is a GitError."""

    def __init__(self, cwd: str | Path = ".", *, token: str = "") -> None:
        self._cwd = str(cwd)
        self._token = token

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # Commits and rebases get segsync's identity (a hosted runner has none); the token
        # goes through the environment, never on a command line other processes can read.
        settings: list[tuple[str, str]] = [
            ("user.name", "segsync"), ("user.email", "segsync@users.noreply.github.com"),
        ]
        if self._token and args and args[0] in ("fetch", "push", "pull"):
            import base64

            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
            settings.append(("http.extraheader", f"AUTHORIZATION: basic {basic}"))
        env = dict(os.environ)
        start = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        for i, (key, value) in enumerate(settings, start):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env["GIT_CONFIG_COUNT"] = str(start + len(settings))
        result = subprocess.run(
            ["git", *args], cwd=self._cwd, capture_output=True, text=True, check=False,
            stdin=subprocess.DEVNULL, env=env,
        )
        if check and result.returncode != 0:
            shown = " ".join(shlex.quote(a) for a in args)
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise GitError(f"git {shown} failed: {detail[-1] if detail else result.returncode}")
        return result

    def to_tip(self, branch: str) -> str:
        """Fetch ``branch`` and move the checkout (detached) to its tip; the tip's sha."""
        self.run("fetch", "--no-tags", "--quiet", "origin", f"refs/heads/{branch}")
        self.run("checkout", "--quiet", "--detach", "FETCH_HEAD")
        return self.run("rev-parse", "HEAD").stdout.strip()

    def commit(self, path: str, message: str) -> bool:
        """Commit ``path`` if it changed; True when a commit was made."""
        self.run("add", "--", path)
        if self.run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return False
        self.run("commit", "--quiet", "-m", message)
        return True

    def prefix(self) -> str:
        """Where the working directory is inside the repository (``team-a/``, or ``""``)."""
        return self.run("rev-parse", "--show-prefix").stdout.strip()

    def push(self, branch: str, state_path: str, *, attempts: int = 5) -> int:
        """Push HEAD to ``branch``; when it moved meanwhile, fetch, rebase (the state file
        merged entry by entry) and try again. The number of attempts it took."""
        git_path = self.run("rev-parse", "--git-path", "info/attributes").stdout.strip()
        attributes = Path(self._cwd, git_path)
        attributes.parent.mkdir(parents=True, exist_ok=True)
        in_repo = os.path.normpath(self.prefix() + state_path).replace(os.sep, "/")
        line = f"/{in_repo} merge=segsync-state\n"
        if line not in (attributes.read_text() if attributes.exists() else ""):
            with attributes.open("a", encoding="utf-8") as handle:
                handle.write(line)
        driver = f"{shlex.quote(sys.executable)} -m segsync state merge %O %A %B"
        self.run("config", "merge.segsync-state.driver", driver)
        self.run("config", "merge.segsync-state.name", "segsync state entries")
        for attempt in range(1, attempts + 1):
            pushed = self.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", check=False)
            if pushed.returncode == 0:
                return attempt
            self.run("fetch", "--no-tags", "--quiet", "origin", f"refs/heads/{branch}")
            rebased = self.run("rebase", "--quiet", "FETCH_HEAD", check=False)
            if rebased.returncode != 0:
                self.run("rebase", "--abort", check=False)
                raise GitError(
                    f"the state could not be rebased onto {branch} (another run changed the "
                    "same entries); it is kept in the job's artifact"
                )
        raise GitError(f"the state could not be pushed to {branch} after {attempts} attempts")


def plan_comment(markdown: str, *, run_url: str) -> str:
    """The comment's body: the markdown plan, and where the whole plan is kept."""
    return (
        markdown.rstrip("\n")
        + f"\n\n<sub>The whole plan (text, markdown and JSON) is in the [run's artifacts]"
        f"({run_url}).</sub>\n"
    )


def invalid_comment(errors: Sequence[str], *, run_url: str) -> str:
    """The comment when the specs do not validate: the plan above is no longer true."""
    listed = "\n".join("- `" + e.replace("`", "'") + "`" for e in errors[:50])
    more = f"\n- and {len(errors) - 50} more" if len(errors) > 50 else ""
    return (
        "**The specs are invalid: no plan.** See the annotations on the changed lines, or "
        f"[the run]({run_url}).\n\n{listed}{more}\n"
    )
