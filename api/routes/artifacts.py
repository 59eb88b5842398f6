"""What a run produced: the list of its artifacts, and each one's bytes, streamed from PostgreSQL
a slice at a time (pipelines.store.artifacts) with its ETag, conditional GET and byte ranges."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api import ranges
from api.body import check_id, check_param
from api.deps import StateDep
from api.errors import ApiError
from api.openapi import io
from api.respond import not_found, respond
from pipelines.store import artifacts, repo

router = APIRouter(tags=["artifacts"])

_BYTES = {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}


def _bytes_io() -> dict[str, Any]:
    """The bytes route's responses: its media type is the artifact's, so ``io`` cannot describe it."""
    extra = io(responses={400: "error", 404: "error", 416: "error"})
    extra["responses"].update({
        "200": {"description": "the whole artifact", **_BYTES},
        "206": {"description": "the requested byte range (Content-Range)", **_BYTES},
        "304": {"description": "If-None-Match matched the ETag"},
    })
    return extra


@router.get("/runs/{run_id}/artifacts", openapi_extra=io(responses={200: "artifact-list", 400: "error", 404: "error"}))
def list_artifacts(run_id: str, st: StateDep) -> JSONResponse:
    check_id(run_id, "runId")
    with st.app_pool.connection() as conn:
        if repo.get_run(conn, run_id) is None:
            raise not_found("run", run_id)
        found = artifacts.listing(conn, run_id)
    return respond("artifact-list", {"runId": run_id, "artifacts": [a.as_dict() for a in found]})


# ``:path``: names hold slashes (``sandbox/<command>/files/<path>``); the name is matched as one
# exact key among the run's rows.
@router.get("/runs/{run_id}/artifacts/{name:path}", openapi_extra=_bytes_io())
def get_artifact(run_id: str, name: str, st: StateDep,
                 range_: Annotated[str | None, Header(alias="Range")] = None,
                 if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
                 if_range: Annotated[str | None, Header(alias="If-Range")] = None) -> Response:
    check_id(run_id, "runId")
    check_param("name", name)
    with st.app_pool.connection() as conn:
        if repo.get_run(conn, run_id) is None:
            raise not_found("run", run_id)
        found = artifacts.find(conn, run_id, name)
    if found is None:
        raise ApiError(404, "not_found", f"run {run_id} has no artifact named {name[:200]!r}")
    headers = {"ETag": ranges.etag(found.sha256), "Accept-Ranges": "bytes",
               # The bytes come from the sandbox: a browser must not guess them into HTML.
               "X-Content-Type-Options": "nosniff"}
    if if_none_match is not None and ranges.none_match(if_none_match, found.sha256):
        return Response(status_code=304, headers=headers)
    span, status = ranges.Span(0, found.size - 1), 200
    if range_ is not None and ranges.if_range_holds(if_range, found.sha256):
        try:
            asked = ranges.requested(range_, found.size)
        except ranges.Unsatisfiable:
            raise ApiError(416, "range_not_satisfiable", f"the artifact has {found.size} bytes",
                           headers={"Content-Range": f"bytes */{found.size}"}) from None
        if asked is not None:
            span, status = asked, 206
            headers["Content-Range"] = f"bytes {span.start}-{span.end}/{found.size}"
    headers["Content-Length"] = str(span.end - span.start + 1)
    return StreamingResponse(artifacts.read(st.app_pool.connection, run_id, found, span.start, span.end),
                             status_code=status, media_type=found.media_type, headers=headers)
