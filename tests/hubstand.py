"""A local stand-in for the Hugging Face Hub's HTTP API, reached through HF_ENDPOINT by the
real `huggingface_hub` client: who-am-I, data set and model info, file resolution with HEAD
and ranges, gated and missing sets, and scripted faults (429 with a reset time, 500, a
connection dropped mid-file). It counts every request and the bytes it sends.

Model repos are written as huggingface_hub 2.4's HfApi sends them: create-repo
(POST /api/repos/create), README metadata validation (POST /api/validate-yaml), preupload
(POST /api/models/<id>/preupload/<rev>; every file is answered "regular", so that no LFS or
Xet transfer is needed) and the commit itself (POST /api/models/<id>/commit/<rev>, NDJSON
with base64 file contents). Writes need a write token (GOOD); READ is valid but read-only
(403), anything else is refused (401). Each commit is recorded in `Hub.commits`.

Used by the tests and by bench/fetch_bench.py."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

GOOD = "hf_" + "good" * 9
BAD = "hf_" + "bad0" * 9
READ = "hf_" + "read" * 9  # valid, but without write access


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = "a" * 40
    gated: bool = False
    granted: tuple[str, ...] = (GOOD,)  # tokens whose accounts accepted a gated set's terms
    conversion: dict[str, bytes] | None = None  # refs/convert/parquet, for loose-image repos
    conversion_sha: str = "c" * 40


@dataclass
class Request:
    method: str
    path: str
    status: int
    sent: int  # body bytes
    range: str | None = None


@dataclass
class Commit:
    repo_id: str
    summary: str
    files: dict[str, bytes]  # path -> content, as committed
    token: str  # the Authorization the commit came with


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    models: dict[str, Repo] = field(default_factory=dict)  # model repos (created by pushes)
    commits: list[Commit] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)  # create-repo payloads, as sent
    # Faults, each used once by the first request whose path contains its key:
    # "429" (with a RateLimit reset of `reset_s`), "500", or "drop" (half the body, then close).
    faults: list[tuple[str, str]] = field(default_factory=list)
    reset_s: int = 1
    log: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            for i, (key, kind) in enumerate(self.faults):
                if key in path:
                    del self.faults[i]
                    return kind
        return None

    def record(self, *args, **kwargs) -> None:
        with self.lock:
            self.log.append(Request(*args, **kwargs))

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(
            1
            for r in self.log
            if (method is None or r.method == method) and contains in unquote(r.path)
        )

    def bytes_sent(self) -> int:
        return sum(r.sent for r in self.log)


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    hub: Hub  # set on the subclass that serve() makes
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _token(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _json(self, status: int, body, error_code: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.end_headers()
        if self.command == "HEAD":  # a HEAD answer has headers only
            data = b""
        self.wfile.write(data)
        self.hub.record(self.command, self.path, status, len(data))

    def _fault(self, kind: str) -> bool:
        if kind == "429":
            body = json.dumps({"error": "rate limited"}).encode()
            self.send_response(429)
            self.send_header("RateLimit", f'"resolvers";r=0;t={self.hub.reset_s}')
            self.send_header("RateLimit-Policy", '"fixed window";"resolvers";q=3000;w=300')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.hub.record(self.command, self.path, 429, len(body))
            return True
        if kind == "500":
            self._json(500, {"error": "internal error"})
            return True
        return False

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), url.query
        fault = self.hub.take_fault(path) if not head or "resolve" not in path else None
        if fault and self._fault(fault):
            return
        if path.startswith("/api/whoami"):
            if self._token() == GOOD:
                return self._json(200, {"name": "tester", "type": "user"})
            return self._json(401, {"error": "Invalid credentials in Authorization header"})
        if path.startswith("/api/datasets/"):
            return self._info(path.removeprefix("/api/datasets/"), "blobs=true" in query)
        if path.startswith("/api/models/") and "/tree/" in path:
            return self._tree(path.removeprefix("/api/models/").split("/tree/")[0])
        if path.startswith("/api/models/"):
            return self._info(path.removeprefix("/api/models/"), "blobs=true" in query, True)
        if path.startswith("/datasets/") and "/resolve/" in path:
            return self._resolve(path.removeprefix("/datasets/"), head, fault)
        if "/resolve/" in path:
            return self._resolve(path.removeprefix("/"), head, fault, models=True)
        self._json(404, {"error": "not found"})

    def _repo(self, repo_id: str, models: bool = False) -> Repo | None:
        repo = (self.hub.models if models else self.hub.repos).get(repo_id)
        if repo is None:
            self._json(404, {"error": "Repository not found"}, "RepoNotFound")
            return None
        if repo.gated and self._token() not in repo.granted:
            self._json(403, {"error": "Access to this dataset is restricted."}, "GatedRepo")
            return None
        return repo

    def _info(self, rest: str, blobs: bool, models: bool = False) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        repo = self._repo("/".join(repo_id.split("/")[:2]), models)
        if repo is None:
            return
        files, sha = repo.files, repo.sha
        if revision == "refs/convert/parquet":
            if repo.conversion is None:
                return self._json(404, {"error": "Revision not found"}, "RevisionNotFound")
            files, sha = repo.conversion, repo.conversion_sha
        siblings = []
        for name, data in sorted(files.items()):
            entry = {"rfilename": name}
            if blobs:
                entry.update(size=len(data), blobId=_etag(data)[:40])
                entry["lfs"] = {"sha256": _etag(data), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        body = {"id": repo_id, "sha": sha, "private": False, "gated": repo.gated}
        self._json(200, body | {"siblings": siblings})

    def _tree(self, repo_id: str) -> None:
        """A model repo's files, recursive, in one page."""
        repo = self._repo(repo_id, models=True)
        if repo is not None:
            entries = [
                {"type": "file", "path": name, "size": len(data), "oid": _etag(data)[:40]}
                for name, data in sorted(repo.files.items())
            ]
            self._json(200, entries)

    def _resolve(self, rest: str, head: bool, fault: str | None, models: bool = False) -> None:
        repo_id, _, tail = rest.partition("/resolve/")
        repo = self._repo(repo_id, models)
        if repo is None:
            return
        files, sha = repo.files, repo.sha
        for revision in ("refs/convert/parquet", repo.conversion_sha):
            if tail.startswith(revision + "/") and repo.conversion is not None:
                files, sha = repo.conversion, repo.conversion_sha
                tail = tail.removeprefix(revision + "/")
                break
        else:
            tail = tail.split("/", 1)[1]  # "main/..." or "<sha>/..."
        data = files.get(tail)
        if data is None:
            return self._json(404, {"error": "Entry not found"}, "EntryNotFound")
        start, end, status = 0, len(data), 200
        wanted = self.headers.get("Range")
        if wanted:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start = int(first) if first else len(data) - int(last)
            end = int(last) + 1 if first and last else len(data)
            status = 206
        body = data[start:end]
        self.send_response(status)
        self.send_header("X-Repo-Commit", sha)
        self.send_header("ETag", f'"{_etag(data)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if head:
            self.hub.record("HEAD", self.path, status, 0, wanted)
            return
        if fault == "drop":
            half = body[: len(body) // 2]
            self.wfile.write(half)
            self.wfile.flush()
            self.close_connection = True
            self.hub.record("GET", self.path, status, len(half), wanted)
            return
        self.wfile.write(body)
        self.hub.record("GET", self.path, status, len(body), wanted)

    # -- writes: create a model repo, validate its card, preupload, commit ----------------------
    def do_POST(self):
        body = self._body()
        path = unquote(urlsplit(self.path).path)
        if path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        if self._token() not in (GOOD, READ):
            return self._json(401, {"error": "Invalid credentials in Authorization header"})
        if path == "/api/repos/create":
            return self._create(json.loads(body))
        rest = path.removeprefix("/api/models/")
        for verb in ("preupload", "commit"):
            repo_id, marker, _revision = rest.partition(f"/{verb}/")
            if path.startswith("/api/models/") and marker:
                if self._token() != GOOD:
                    return self._json(403, {"error": "You don't have the rights"}, "Forbidden")
                if self._repo(repo_id, models=True) is None:
                    return None
                return self._preupload(body) if verb == "preupload" else self._commit(repo_id, body)
        self._json(404, {"error": "not found"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _create(self, payload: dict) -> None:
        self.hub.created.append(payload)
        if self._token() != GOOD:
            return self._json(403, {"error": "You don't have the rights to create a model"})
        name, owner = payload.get("name", ""), payload.get("organization") or "tester"
        repo_id = f"{owner}/{name}"
        if repo_id in self.hub.models:
            return self._json(409, {"error": "You already created this model repo"})
        self.hub.models[repo_id] = Repo({}, sha="0" * 40)
        self._json(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})

    def _preupload(self, body: bytes) -> None:
        files = json.loads(body)["files"]
        answer = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
        ]
        self._json(200, {"files": answer, "commitOid": "0" * 40})

    def _commit(self, repo_id: str, body: bytes) -> None:
        import base64

        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        files = {}
        for item in lines:
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":  # LFS pointers, deletions, copies: not needed here
                return self._json(400, {"error": f"unsupported operation {item['key']}"})
        repo = self.hub.models[repo_id]
        repo.files.update(files)
        repo.sha = hashlib.sha1(body).hexdigest()
        self.hub.commits.append(Commit(repo_id, header["summary"], files, self._token()))
        url = f"http://{self.headers['Host']}/{repo_id}/commit/{repo.sha}"
        self._json(200, {"commitUrl": url, "commitOid": repo.sha, "pullRequestUrl": None})


def serve(hub: Hub) -> tuple[str, ThreadingHTTPServer]:
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def parquet_shards(
    split: str,
    images: list[bytes],
    labels: list[int],
    names: list[str],
    shards: int,
    group_rows: int = 100,
) -> dict[str, bytes]:
    """A split as `datasets.push_to_hub` lays it out: data/{split}-0000i-of-0000n.parquet,
    an `image` struct column and a ClassLabel `label`, 100-row row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {
        "image": {"_type": "Image"},
        "label": {"names": names, "_type": "ClassLabel"},
    }
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    out, per = {}, -(-len(images) // shards)
    for k in range(shards):
        rows = range(k * per, min(len(images), (k + 1) * per))
        table = pa.table(
            {
                "image": [{"bytes": images[i], "path": f"{i}.jpg"} for i in rows],
                "label": pa.array([labels[i] for i in rows], pa.int64()),
            }
        ).replace_schema_metadata(meta)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=group_rows)
        out[f"data/{split}-{k:05d}-of-{shards:05d}.parquet"] = buffer.getvalue()
    return out
