from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])
# Not JSON and so not a contract of contracts/: the body is Prometheus' text exposition format,
# which the tests parse with the official client's parser (tests/integration/test_metrics.py).
EXPOSITION = {"description": "Prometheus text exposition format 0.0.4 (README: Metrics)",
              "content": {"text/plain": {"schema": {"type": "string"}}}}


@router.get("/metrics", response_class=Response, openapi_extra={"responses": {"200": EXPOSITION}})
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)
