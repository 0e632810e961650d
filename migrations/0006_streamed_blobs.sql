-- Content written as it streams in, before its SHA-256 is known, keeps its chunks under the
-- key they were written with: `chunk_key` names them (NULL: the chunks are under `sha256`).
-- Chunks under a key that no content row names are an interrupted upload's, removed later.
ALTER TABLE blob_contents ADD COLUMN chunk_key TEXT;
CREATE INDEX blob_contents_chunk_key ON blob_contents (chunk_key);
