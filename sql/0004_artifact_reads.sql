-- Artifacts are served over HTTP (GET /runs/{id}/artifacts/{name}) with their media type, which
-- the writer knows best: it is recorded with the bytes. Every artifact written so far was UTF-8
-- text (plan.json, result.json, stdout, text files the sandbox collected).
ALTER TABLE app.artifacts ADD COLUMN media_type text;
UPDATE app.artifacts
   SET media_type = CASE WHEN name LIKE '%.json' THEN 'application/json' ELSE 'text/plain; charset=utf-8' END;
ALTER TABLE app.artifacts ALTER COLUMN media_type SET NOT NULL;

-- Served in chunks with substring(): uncompressed out-of-line storage lets PostgreSQL fetch only
-- the TOAST chunks a slice covers, where a compressed value is decompressed from its start on
-- every slice. Artifacts are small text (the cap: CollectCaps.max_content_kb), so the disk it
-- costs is small. Applies to rows written from now on.
ALTER TABLE app.artifacts ALTER COLUMN content SET STORAGE EXTERNAL;
