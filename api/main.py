"""FastAPI front door (placeholder until the intent routes land)."""

from fastapi import FastAPI

app = FastAPI(title="intent-harness")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
