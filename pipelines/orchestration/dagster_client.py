"""Dagster's GraphQL API (the webserver) for launching, re-executing and terminating runs.

Raw HTTP with httpx, one short-lived client per call: DagsterGraphQLClient is not thread-safe
and lacks re-execution from failure.
"""

from __future__ import annotations

from typing import Any

import httpx

_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

_REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on PipelineNotFoundError { message }
  }
}
"""

_TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunFailure { message }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


class DagsterUnavailable(RuntimeError):
    """The webserver did not answer; the caller's outbox row stays for the reconciler.

    ``status`` is the HTTP status when it answered with an error (the request was refused before
    any run was created), None when it did not answer at all (the request may have gone through).
    """

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body  # what it answered, for logs and checks; not for API clients


# Dagster's refusal to re-execute from failure a run whose steps all succeeded.
NOTHING_TO_RETRY = "No steps needed to be retried"


class DagsterRejected(RuntimeError):
    """The webserver answered with an error for this request."""


class DagsterClient:
    def __init__(self, base_url: str, *, location: str = "harness", repository: str = "__repository__",
                 timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.location = location
        self.repository = repository
        self.timeout_s = timeout_s

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = httpx.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables},
                              timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(f"Dagster webserver at {self.base_url}: {exc}") from exc
        if resp.status_code != 200:
            # A resolver's Python exception comes back as HTTP 500 with a PythonError in the body.
            raise DagsterUnavailable(f"Dagster webserver answered HTTP {resp.status_code}", resp.status_code,
                                     resp.text[:2000])
        body = resp.json()
        if body.get("errors"):
            raise DagsterRejected("; ".join(e.get("message", "?") for e in body["errors"]))
        return body["data"]

    @staticmethod
    def _run_id(result: dict[str, Any]) -> str:
        if result["__typename"] == "LaunchRunSuccess":
            return str(result["run"]["runId"])
        detail = result.get("message") or result.get("errors") or result
        raise DagsterRejected(f"{result['__typename']}: {detail}")

    def launch(self, job: str, run_config: dict[str, Any], tags: dict[str, str]) -> str:
        params = {
            "selector": {"repositoryLocationName": self.location, "repositoryName": self.repository,
                         "jobName": job},
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]},
        }
        return self._run_id(self._post(_LAUNCH, {"params": params})["launchRun"])

    def reexecute_from_failure(self, parent_run_id: str) -> str:
        """Re-execute the steps that did not succeed. When every step had succeeded (the worker died
        between the last step and the run's own success event), Dagster refuses a from-failure
        re-execution, and so does its retry daemon, which would leave the run failed for good:
        then every step runs again, each finds its committed checkpoint and redoes nothing."""
        try:
            return self._reexecute(parent_run_id, "FROM_FAILURE")
        except (DagsterRejected, DagsterUnavailable) as exc:
            if NOTHING_TO_RETRY not in f"{exc} {getattr(exc, 'body', '')}":
                raise
        return self._reexecute(parent_run_id, "ALL_STEPS")

    def _reexecute(self, parent_run_id: str, strategy: str) -> str:
        params = {"parentRunId": parent_run_id, "strategy": strategy}
        return self._run_id(self._post(_REEXECUTE, {"params": params})["launchRunReexecution"])

    def terminate(self, run_id: str) -> None:
        result = self._post(_TERMINATE, {"runId": run_id})["terminateRun"]
        if result["__typename"] not in ("TerminateRunSuccess",):
            raise DagsterRejected(f"{result['__typename']}: {result.get('message', '')}")


def grpc_serving(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the code server answers the standard gRPC health check (service "DagsterApi")."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=2)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
