BEGIN;
CREATE TABLE a (id int);
CREATE INDEX CONCURRENTLY b ON a (id);
COMMIT;
SELECT $$x;$$, E'\'', "q""x" /* c /* nested */ */;
