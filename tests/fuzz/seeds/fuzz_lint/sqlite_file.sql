BEGIN; ALTER TABLE t ALTER COLUMN a TYPE int; COMMIT; -- zdm:allow sqlite-alter-unsupported
