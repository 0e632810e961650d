-- Chunks are stored out of line without an attempt to compress them first: they are 3 MiB of
-- whatever the caller sent, most often already compressed or random, and pglz spends CPU on
-- every one before it gives up.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
