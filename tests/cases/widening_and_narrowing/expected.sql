BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.tools ALTER COLUMN name TYPE character varying(255);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.tools ALTER COLUMN description TYPE text;
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.tools ALTER COLUMN price TYPE numeric(12,2);
COMMIT;
-- drift type-mismatch public.tools.code
-- drift type-mismatch public.tools.tenant_id
