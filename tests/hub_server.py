"""A small Hugging Face Hub-protocol server on 127.0.0.1, for tests that use the real client.

It implements the routes ``huggingface_hub`` (2.x) and transformers call to create a repo (a model, or a
Space with its SDK: those are kept under the key ``spaces/<owner>/<name>``), pre-upload,
commit (regular files as base64 in the NDJSON payload, large files through the LFS batch API with a
basic PUT transfer and a verify call), open pull requests (``create_pr=1`` -> ``refs/pr/N``), read
repo info, list trees and paths, and resolve/download files (with ``X-Repo-Commit``, ``ETag``,
``X-Linked-Etag``/``X-Linked-Size`` for LFS files). File contents live on disk under a temporary
folder; branches, commits and pull requests are kept in memory.

Faults are injected per route: ``hub.fail("commit", 500, times=1)`` makes the next commit answer
500 (then the route works again). Route names: ``create``, ``info``, ``validate_yaml``,
``preupload``, ``commit``, ``lfs_batch``, ``lfs_upload``, ``lfs_verify``, ``resolve``, ``tree``,
``paths_info``, ``discussions``, ``branch``.

Use the ``hub`` fixture (``from hub_server import hub``), which starts a server per test and points
``huggingface_hub`` and transformers at it; Xet uploads are disabled there because the server speaks
the LFS protocol only.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import os
import shutil
import struct
import zlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

# Files the Hub stores through LFS whatever their size (the default .gitattributes of a new repo).
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.png", "*.jpg", "*.gguf", "*.zip", "*.npy")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    """A file in a commit: regular (git object) or LFS (content addressed by sha256)."""

    size: int
    git_oid: str
    sha256: str | None = None  # set for LFS files

    def to_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.sha256 is not None:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return entry


@dataclass
class Commit:
    oid: str
    files: dict[str, Blob]
    message: str
    parent: str | None
    date: str


@dataclass
class PullRequest:
    num: int
    title: str
    author: str
    created_at: str
    status: str = "open"
    base: str = "main"


@dataclass
class Repo:
    repo_id: str
    private: bool
    author: str
    repo_type: str = "model"
    sdk: str | None = None  # a Space's
    refs: dict[str, str] = field(default_factory=dict)  # branch or refs/pr/N -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    pulls: list[PullRequest] = field(default_factory=list)


class HubError(Exception):
    """An HTTP error answer: status, X-Error-Code header, message."""

    def __init__(self, status: int, code: str | None = None, message: str = ""):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HubState:
    """Repos, blobs on disk, tokens, injected faults and a log of the requests served."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "lfs").mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens)  # token -> user name
        self.repos: dict[str, Repo] = {}
        self.faults: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, route, path)
        self.lock = threading.RLock()
        self._counter = itertools.count()
        self.base_url = ""

    # -- faults -------------------------------------------------------------------------------
    def fail(self, route: str, status: int, times: int = 1) -> None:
        """Make the next ``times`` requests to ``route`` answer ``status``."""
        with self.lock:
            self.faults.setdefault(route, []).extend([status] * times)

    def take_fault(self, route: str) -> int | None:
        with self.lock:
            queue = self.faults.get(route)
            return queue.pop(0) if queue else None

    def count(self, route: str) -> int:
        return sum(1 for _, r, _ in self.requests if r == route)

    # -- storage ------------------------------------------------------------------------------
    def store_regular(self, data: bytes) -> Blob:
        oid = git_blob_oid(data)
        path = self.root / "objects" / oid
        if not path.exists():
            path.write_bytes(data)
        return Blob(size=len(data), git_oid=oid)

    def lfs_path(self, sha256: str) -> Path:
        return self.root / "lfs" / sha256

    def read_blob(self, blob: Blob) -> bytes:
        if blob.sha256 is not None:
            return self.lfs_path(blob.sha256).read_bytes()
        return (self.root / "objects" / blob.git_oid).read_bytes()

    def new_commit(self, repo: Repo, files: dict[str, Blob], message: str, parent: str | None) -> Commit:
        seed = json.dumps([repo.repo_id, sorted((p, b.git_oid) for p, b in files.items()), message, parent, next(self._counter), os.urandom(8).hex()])
        commit = Commit(
            oid=hashlib.sha1(seed.encode()).hexdigest(),
            files=files,
            message=message,
            parent=parent,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        repo.commits[commit.oid] = commit
        return commit

    def create_repo(self, repo_id: str, private: bool, author: str, repo_type: str = "model", sdk: str | None = None) -> Repo:
        repo = Repo(repo_id=repo_id, private=private, author=author, repo_type=repo_type, sdk=sdk)
        first = self.new_commit(repo, {".gitattributes": self.store_regular(GITATTRIBUTES)}, "initial commit", None)
        repo.refs["main"] = first.oid
        self.repos[repo_key(repo_type, repo_id)] = repo
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        if revision in repo.refs:
            return repo.commits[repo.refs[revision]]
        if revision in repo.commits:
            return repo.commits[revision]
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")


def repo_key(repo_type: str, repo_id: str) -> str:
    """Where the server keeps a repo: ``owner/name`` for a model, ``spaces/owner/name`` for a Space (the URL prefix)."""
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


def _is_lfs(path: str, size: int, sample: bytes) -> bool:
    name = path.rsplit("/", 1)[-1]
    return size >= LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS) or b"\0" in sample


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HubHTTPServer"

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(body))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.state.tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return self.state.tokens[token]

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return user

    def _repo(self, repo_id: str, *, write: bool = False) -> Repo:
        user = self._require_user() if write else self._user()
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and user != repo.author):
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        if write and user != repo.author:
            raise HubError(403, None, f"You don't have the rights to write to {repo_id}")
        return repo

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [unquote(p) for p in split.path.strip("/").split("/")]
        route, handler, args = self._route(method, parts)
        with self.state.lock:
            self.state.requests.append((method, route, split.path))
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            fault = self.state.take_fault(route)
            if fault is not None:
                raise HubError(fault, None, f"injected fault {fault} on {route}")
            if handler is None:
                raise HubError(404, None, f"no route for {method} {split.path}")
            with self.state.lock:
                handler(*args, query=query, body=body, head=(method == "HEAD"))
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            if getattr(err, "commit", None):
                headers["X-Repo-Commit"] = err.commit
            self._send(err.status, json.dumps({"error": err.message}).encode(), headers, head=(method == "HEAD"))

    def _route(self, method: str, parts: list[str]):
        p = parts
        if method == "POST" and p[:3] == ["api", "repos", "create"]:
            return "create", self.h_create, ()
        if method == "POST" and p[:2] == ["api", "validate-yaml"]:
            return "validate_yaml", self.h_validate_yaml, ()
        if p[:2] in (["api", "models"], ["api", "spaces"]) and len(p) >= 4:
            repo_id, rest = repo_key(p[1][:-1], f"{p[2]}/{p[3]}"), p[4:]
            if method == "GET" and not rest:
                return "info", self.h_info, (repo_id, "main")
            if method == "GET" and rest[:1] == ["revision"] and len(rest) >= 2:
                return "info", self.h_info, (repo_id, "/".join(rest[1:]))
            if method == "POST" and rest[:1] == ["preupload"]:
                return "preupload", self.h_preupload, (repo_id, "/".join(rest[1:]))
            if method == "POST" and rest[:1] == ["commit"]:
                return "commit", self.h_commit, (repo_id, "/".join(rest[1:]))
            if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
                return "tree", self.h_tree, (repo_id, rest[1], "/".join(rest[2:]))
            if method == "POST" and rest[:1] == ["paths-info"]:
                return "paths_info", self.h_paths_info, (repo_id, "/".join(rest[1:]))
            if method == "POST" and rest[:1] == ["branch"] and len(rest) >= 2:
                return "branch", self.h_branch, (repo_id, "/".join(rest[1:]))
            if method == "GET" and rest[:1] == ["discussions"]:
                return "discussions", self.h_discussions, (repo_id, rest[1] if len(rest) > 1 else None)
        if method == "PUT" and p[:1] == ["_lfs"] and len(p) == 2:
            return "lfs_upload", self.h_lfs_upload, (p[1],)
        prefix, q = (p[:1], p[1:]) if p[:1] == ["spaces"] else ([], p)  # a Space's URLs start with spaces/
        if len(q) >= 6 and q[1].endswith(".git") and q[2:5] == ["info", "lfs", "objects"] and method == "POST":
            repo_id = "/".join(prefix + [q[0], q[1][:-4]])
            if q[5] == "batch":
                return "lfs_batch", self.h_lfs_batch, (repo_id,)
            if q[5] == "verify":
                return "lfs_verify", self.h_lfs_verify, (repo_id,)
        if method in ("GET", "HEAD") and len(q) >= 5 and q[2] == "resolve":
            return "resolve", self.h_resolve, ("/".join(prefix + q[:2]), q[3], "/".join(q[4:]))
        return "unknown", None, ()

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- routes -------------------------------------------------------------------------------
    def h_create(self, *, body: bytes, **_):
        user = self._require_user()
        payload = json.loads(body)
        namespace = payload.get("organization") or user
        if namespace != user:
            raise HubError(403, None, f"You don't have the rights to create a model under the namespace {namespace}")
        repo_id, repo_type = f"{namespace}/{payload['name']}", payload.get("type") or "model"
        if repo_type == "space" and not payload.get("sdk"):
            raise HubError(400, None, "a Space needs an sdk")
        key = repo_key(repo_type, repo_id)
        url = f"{self.state.base_url}/{key}"
        if key in self.state.repos:  # the Hub answers 409 with the repo's url
            message = f"You already created this {repo_type} repo"
            self._json(409, {"error": message, "url": url}, {"X-Error-Message": message})
            return
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.state.create_repo(repo_id, private, user, repo_type, payload.get("sdk"))
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def h_validate_yaml(self, *, body: bytes, **_):
        content = json.loads(body)["content"]
        errors = []
        if content.startswith("---"):
            block = content.split("---", 2)[1] if content.count("---") >= 2 else ""
            try:
                data = yaml.safe_load(block)
                if data is not None and not isinstance(data, dict):
                    errors.append({"message": "metadata must be a mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"invalid YAML: {err}"})
        if errors:
            self._json(400, {"errors": errors, "warnings": []})
        else:
            self._json(200, {"errors": [], "warnings": []})

    def h_info(self, repo_id: str, revision: str, **_):
        repo = self._repo(repo_id)
        commit = self.state.resolve(repo, revision)
        card_data = None
        if "README.md" in commit.files:
            text = self.state.read_blob(commit.files["README.md"]).decode()
            if text.startswith("---"):
                card_data = yaml.safe_load(text.split("---", 2)[1])
        self._json(
            200,
            {
                "id": repo.repo_id,
                "author": repo.author,
                "sdk": repo.sdk,
                "sha": commit.oid,
                "private": repo.private,
                "lastModified": commit.date,
                "tags": list((card_data or {}).get("tags") or []),
                "library_name": (card_data or {}).get("library_name"),
                "cardData": card_data,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            },
        )

    def h_preupload(self, repo_id: str, revision: str, *, body: bytes, **_):
        repo = self._repo(repo_id, write=True)
        commit = self.state.resolve(repo, revision)
        files = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = _is_lfs(f["path"], f["size"], sample)
            existing = commit.files.get(f["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if (lfs and existing.sha256) else (None if lfs else existing.git_oid)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": files, "commitOid": commit.oid})

    def h_lfs_batch(self, repo_id: str, *, body: bytes, **_):
        self._repo(repo_id, write=True)
        payload = json.loads(body)
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            blob = self.state.lfs_path(obj["oid"])
            if not (blob.exists() and blob.stat().st_size == obj["size"]):
                entry["actions"] = {
                    "upload": {"href": f"{self.state.base_url}/_lfs/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.state.base_url}/{repo_id}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def h_lfs_upload(self, oid: str, *, body: bytes, **_):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, None, f"uploaded content does not match sha256 {oid}")
        path = self.state.lfs_path(oid)
        tmp = path.with_suffix(".incomplete")
        tmp.write_bytes(body)
        tmp.replace(path)
        self._send(200, b"", {"ETag": f'"{oid}"'})

    def h_lfs_verify(self, repo_id: str, *, body: bytes, **_):
        self._repo(repo_id, write=True)
        obj = json.loads(body)
        path = self.state.lfs_path(obj["oid"])
        if not path.exists() or path.stat().st_size != obj["size"]:
            raise HubError(404, None, f"LFS object {obj['oid']} not found")
        self._json(200, {"oid": obj["oid"], "size": obj["size"]})

    def h_commit(self, repo_id: str, revision: str, *, query: dict, body: bytes, **_):
        repo = self._repo(repo_id, write=True)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, None, "commit payload lacks a header with a summary")
        base = self.state.resolve(repo, revision)
        if header.get("parentCommit") and header["parentCommit"] != base.oid:
            raise HubError(412, None, "A commit has happened since. Please refresh and try again.")
        files = dict(base.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = self.state.store_regular(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                blob_path = self.state.lfs_path(value["oid"])
                if not blob_path.exists():
                    raise HubError(400, None, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                size = blob_path.stat().st_size
                files[value["path"]] = Blob(size=size, git_oid=git_blob_oid(lfs_pointer(value["oid"], size)), sha256=value["oid"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
        commit = self.state.new_commit(repo, files, header["summary"], base.oid)
        pr_url = None
        if query.get("create_pr") in ("1", "true", "True"):
            num = len(repo.pulls) + 1
            repo.pulls.append(
                PullRequest(num=num, title=header["summary"], author=self._require_user(), created_at=commit.date, base=revision)
            )
            repo.refs[f"refs/pr/{num}"] = commit.oid
            pr_url = f"{self.state.base_url}/{repo_id}/discussions/{num}"
        else:
            repo.refs[revision if revision in repo.refs else "main"] = commit.oid
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.state.base_url}/{repo_id}/commit/{commit.oid}",
                "pullRequestUrl": pr_url,
            },
        )

    def h_branch(self, repo_id: str, branch: str, *, body: bytes, **_):
        repo = self._repo(repo_id, write=True)
        if branch in repo.refs:
            raise HubError(409, None, f"Reference already exists: refs/heads/{branch}")
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        repo.refs[branch] = self.state.resolve(repo, start).oid
        self._json(200, {})

    def _entries(self, commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        under = {p: b for p, b in commit.files.items() if not prefix or p.startswith(prefix + "/")}
        if prefix and not under:
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on this revision")
        entries, folders = [], set()
        for path, blob in sorted(under.items()):
            rel = path[len(prefix) + 1 :] if prefix else path
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(blob.to_entry(path))
        for folder in sorted(folders):
            oid = hashlib.sha1(folder.encode() + commit.oid.encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        return entries

    def h_tree(self, repo_id: str, revision: str, path: str, *, query: dict, **_):
        commit = self.state.resolve(self._repo(repo_id), revision)
        recursive = query.get("recursive", "False").lower() == "true"
        self._json(200, self._entries(commit, path, recursive))

    def h_paths_info(self, repo_id: str, revision: str, *, body: bytes, **_):
        commit = self.state.resolve(self._repo(repo_id), revision)
        form = parse_qs(body.decode())
        out = []
        folders = {"/".join(p.split("/")[:i]) for p in commit.files for i in range(1, p.count("/") + 1)}
        for path in form.get("paths", []):
            if path in commit.files:
                out.append(commit.files[path].to_entry(path))
            elif path in folders:
                out.append({"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path})
        self._json(200, out)

    def h_discussions(self, repo_id: str, num: str | None, **_):
        repo = self._repo(repo_id)

        def as_dict(pr: PullRequest) -> dict[str, Any]:
            return {
                "num": pr.num,
                "title": pr.title,
                "author": {"name": pr.author},
                "createdAt": pr.created_at,
                "status": pr.status,
                "repo": {"name": repo_id, "type": "model"},
                "isPullRequest": True,
            }

        if num is None:
            items = [as_dict(pr) for pr in reversed(repo.pulls)]
            self._json(200, {"discussions": items, "count": len(items), "start": 0, "numClosedDiscussions": 0})
            return
        pr = next((pr for pr in repo.pulls if str(pr.num) == num), None)
        if pr is None:
            raise HubError(404, None, f"Discussion {num} not found")
        detail = as_dict(pr)
        detail.update({"events": [], "changes": {"base": f"refs/heads/{pr.base}"}, "filesWithConflicts": [], "diff": ""})
        self._json(200, detail)

    def h_resolve(self, repo_id: str, revision: str, path: str, *, head: bool, **_):
        repo = self._repo(repo_id)
        commit = self.state.resolve(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            err = HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
            err.commit = commit.oid
            raise err
        data = b"" if head else self.state.read_blob(blob)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{blob.git_oid}"',
            "Accept-Ranges": "none",
        }
        if blob.sha256 is not None:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(blob.size)
        if head:
            self.send_response(200)
            headers["Content-Length"] = str(blob.size)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._send(200, data, headers)


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.state = state
        state.base_url = f"http://127.0.0.1:{self.server_address[1]}"


class LocalHub:
    """A running server: ``url``, ``state`` (repos, requests), ``fail(route, status, times)``."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.state = HubState(root, tokens)
        self.server = HubHTTPServer(self.state)
        self.url = self.state.base_url
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-hub", daemon=True)

    def __enter__(self) -> "LocalHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def fail(self, route: str, status: int, times: int = 1) -> None:
        self.state.fail(route, status, times)

    def count(self, route: str) -> int:
        return self.state.count(route)

    def file(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        """The content of ``path`` at ``revision`` as stored by the server (for assertions)."""
        with self.state.lock:
            repo = self.state.repos[repo_id]
            return self.state.read_blob(self.state.resolve(repo, revision).files[path])

    def files(self, repo_id: str, revision: str = "main") -> list[str]:
        with self.state.lock:
            return sorted(self.state.resolve(self.state.repos[repo_id], revision).files)

    def commits_on(self, repo_id: str, revision: str = "main") -> int:
        """How many commits the history of ``revision`` holds (the initial one included)."""
        with self.state.lock:
            repo = self.state.repos[repo_id]
            commit, n = self.state.resolve(repo, revision), 0
            while commit is not None:
                n += 1
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return n


# Token and user of the test server's account. The token is a made-up string that tests look for
# in everything our code writes or prints.
HUB_USER = "alice"
HUB_TOKEN = "hf_TestSecretTokenXYZ0123456789abcdefABCDEF"


def point_clients_at(monkeypatch: pytest.MonkeyPatch, url: str, token: str | None = HUB_TOKEN) -> None:
    """Route huggingface_hub and transformers to ``url`` for this test (constants read at import)."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", url)
    try:
        import transformers.utils.hub as tf_hub

        monkeypatch.setattr(tf_hub, "_hf_api", None)
    except ImportError:
        pass
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)


@pytest.fixture
def hub(tmp_path_factory, monkeypatch):
    """A fresh local Hub for one test, with huggingface_hub/transformers pointed at it and HF_TOKEN set."""
    root = tmp_path_factory.mktemp("hub-server")
    with LocalHub(root, {HUB_TOKEN: HUB_USER}) as server:
        point_clients_at(monkeypatch, server.url)
        yield server
    shutil.rmtree(root, ignore_errors=True)


# -- test data: a synthetic analysis run that follows the report schema ---------------------------


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid grey PNG image, written without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes([128] * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_report(task: str = "sst2", model: str = "alice/tiny-gpt2", rec2ftp: float | None = 0.8) -> dict[str, Any]:
    """A report dictionary with every key of the schema in hf_metaopt/analysis/report.py."""
    return {
        "accuracy": {"zsl": 0.5, "icl": 0.75, "ft": 0.625},
        "accuracy_ci95": {"zsl": [0.375, 0.625], "icl": [0.625, 0.875], "ft": [0.5, 0.75]},
        "predictions": {"zsl": [0, 1, 0, 0, 1, 1, 0, 1], "icl": [0, 1, 1, 0, 1, 1, 0, 1], "ft": [0, 1, 1, 0, 1, 0, 0, 1]},
        "labels": [0, 1, 1, 0, 1, 0, 0, 1],
        "rec2ftp": rec2ftp,
        "rec2ftp_ci95": [0.5, 1.0] if rec2ftp is not None else None,
        "simaou": {"per_layer": [0.2, 0.1], "mean": 0.15, "ci95": [0.1, 0.2], "random_mean": 0.001,
                   "random_per_layer": [0.002, 0.0], "unnormalized_per_layer": [0.1, 0.05],
                   "unnormalized_mean": 0.075, "unnormalized_ci95": [0.05, 0.1]},
        "simam": {"per_layer_before": [0.3, 0.35], "per_layer_after": [0.4, 0.45], "per_layer_delta": [0.1, 0.12],
                  "before": 0.325, "after": 0.425, "delta": 0.11,
                  "before_ci95": [0.3, 0.35], "after_ci95": [0.4, 0.45], "delta_ci95": [0.1, 0.12]},
        "kendall": {"per_layer": [0.2, 0.18], "mean": 0.19, "ci95": [0.15, 0.23], "random_mean": 0.0, "random_per_layer": [0.0, 0.0]},
        "controls": {},
        "config": {"model": model, "model_revision": None, "task": task, "template": "Sentence: {text} Label:",
                   "label_words": [" Negative", " Positive"], "separator": "\n", "position": "prediction",
                   "method": "kv", "learning_rate": 0.001, "seed": 1, "n_demonstrations": 4, "n_queries": 8,
                   "demonstrations_used": [3, 1, 0, 2], "control": None,
                   "versions": {"hf_metaopt": "0.1.0", "transformers": "5.24.0", "torch": "2.13.0", "peft": "0.21.0"}},
        "notes": ["synthetic report for the Hub tests"],
    }


def make_run_dir(folder: Path, report: dict[str, Any] | None = None) -> Path:
    """An analysis run folder as ICLAnalysisReport.save writes it: report.json, report.md, plots."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report or make_report(), indent=2))
    (folder / "report.md").write_text("# ICL analysis\n\nSynthetic.\n")
    (folder / "simaou_per_layer.png").write_bytes(tiny_png())
    (folder / "kendall_per_layer.png").write_bytes(tiny_png(5, 2))
    return folder


__all__ = ["HUB_TOKEN", "HUB_USER", "LocalHub", "hub", "make_report", "make_run_dir", "point_clients_at", "tiny_png"]
