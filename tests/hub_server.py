"""A local stand-in for the Hugging Face Hub over HTTP, for the dress rehearsal of the paper preset.

It serves folders on this machine as Hub repositories, speaking the part of the Hub's HTTP API that
``huggingface_hub`` (HfApi, hf_hub_download, snapshot_download, HfFileSystem) and ``datasets``
(load_dataset, streaming or not) use: repository info at a revision, file trees, paths-info, and file
downloads with the headers the client checks (X-Repo-Commit, ETag, sizes, byte ranges). Plain files are
served by URL too (AstroCLIP's HDF5, the Galaxy Zoo CSV). Point the clients at it with ``HF_ENDPOINT``.

Layout of ``root``: ``models/<owner>/<name>/...``, ``datasets/<owner>/<name>/...``, ``files/...``. Each
repository has one revision, ``main``, whose commit is a hash of its content; asking for another revision,
a repository or a file that is not there gets the Hub's 404 and error code.

No existing package serves local folders this way without git repositories and an upstream to mirror (olah,
hf-mirror), so this is written here; it follows the Hub's documented endpoints, not its code.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KINDS = {"models": "models", "datasets": "datasets"}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Repo:
    def __init__(self, folder: Path):
        self.folder = folder
        digest = hashlib.sha1()
        for path in _files(folder):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
        self.sha = digest.hexdigest()

    def paths(self) -> list[str]:
        return [str(p.relative_to(self.folder)) for p in _files(self.folder)]

    def entry(self, rel: str) -> dict | None:
        path = self.folder / rel
        if path.is_file():
            return {"type": "file", "path": rel, "size": path.stat().st_size, "oid": _sha256(path)[:40],
                    "lfs": {"oid": _sha256(path), "size": path.stat().st_size, "pointerSize": 130}}
        if path.is_dir():
            return {"type": "directory", "path": rel, "oid": hashlib.sha1(rel.encode()).hexdigest()}
        return None


class LocalHub:
    """``with LocalHub(root) as hub:`` serves ``root`` at ``hub.url`` until the block ends."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.requests: list[str] = []
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def repo(self, kind: str, repo_id: str) -> Repo | None:
        folder = self.root / kind / repo_id
        return Repo(folder) if folder.is_dir() else None


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; the requests are kept in hub.requests
        pass

    # -- replies ----------------------------------------------------------------------------------------
    def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

    def _file(self, path: Path, headers: dict) -> None:
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if ranged and size:
            a, b = ranged.groups()
            if a == "":  # the last b bytes
                start, end = max(0, size - int(b)), size - 1
            else:
                start, end = int(a), min(int(b), size - 1) if b else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1 if size else 0))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and size:
            with open(path, "rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(end - start + 1))

    # -- routing ----------------------------------------------------------------------------------------
    def do_HEAD(self):
        self._route()

    def do_GET(self):
        self._route()

    def do_POST(self):
        self._route()

    def _repo_at(self, kind: str, repo_id: str, revision: str) -> Repo | None:
        repo = self.hub.repo(kind, repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}. {repo_id} does not exist")
            return None
        if urllib.parse.unquote(revision) not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def _route(self):
        url = urllib.parse.urlsplit(self.path)
        path, query = urllib.parse.unquote(url.path), urllib.parse.parse_qs(url.query)
        self.hub.requests.append(f"{self.command} {path}")
        if self.command == "POST":
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode()
            form = (json.loads(body) if self.headers.get("Content-Type", "").startswith("application/json")
                    else urllib.parse.parse_qs(body))
        if path.startswith("/files/"):
            target = self.hub.root / path.lstrip("/")
            if not target.is_file():
                return self._error(404, "EntryNotFound", f"{path} not found")
            return self._file(target, {"ETag": f'"{_sha256(target)}"'})
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m:
            kind, repo_id, revision = m.group(1), m.group(2), m.group(3) or "main"
            repo = self._repo_at(kind, repo_id, revision)
            if repo is None:
                return None
            siblings = [{"rfilename": p, "size": (repo.folder / p).stat().st_size} for p in repo.paths()]
            return self._json({"_id": repo.sha[:24], "id": repo_id, "sha": repo.sha, "private": False,
                               "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                               "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
                               "siblings": siblings, "cardData": {}, "author": repo_id.split("/")[0]})
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            kind, repo_id, revision, sub = m.group(1), m.group(2), m.group(3), (m.group(4) or "").strip("/")
            repo = self._repo_at(kind, repo_id, revision)
            if repo is None:
                return None
            folder = repo.folder / sub
            if not folder.is_dir():
                return self._error(404, "EntryNotFound", f"{sub} does not exist at {revision}")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            children = folder.rglob("*") if recursive else folder.iterdir()
            entries = [repo.entry(str(p.relative_to(repo.folder))) for p in sorted(children)]
            return self._json(entries)
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/paths-info/([^/]+)", path)
        if m and self.command == "POST":
            kind, repo_id, revision = m.groups()
            repo = self._repo_at(kind, repo_id, revision)
            if repo is None:
                return None
            paths = form.get("paths", [])
            paths = [paths] if isinstance(paths, str) else paths
            found = [e for e in (repo.entry(p.strip("/")) for p in paths) if e is not None]
            return self._json(found)
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            kind = "datasets" if m.group(1) else "models"
            repo_id, revision, rel = m.group(2), m.group(3), m.group(4)
            repo = self._repo_at(kind, repo_id, revision)
            if repo is None:
                return None
            target = repo.folder / rel
            if not target.is_file():
                return self._error(404, "EntryNotFound", f"{rel} does not exist at {revision}",)
            etag = f'"{_sha256(target)}"'
            return self._file(target, {"ETag": etag, "X-Repo-Commit": repo.sha, "X-Linked-Etag": etag,
                                       "X-Linked-Size": str(target.stat().st_size)})
        return self._error(404, "EntryNotFound", f"no route for {self.command} {path}")
