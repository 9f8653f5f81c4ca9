-- expand (one transaction)
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS label character varying(200);
CREATE OR REPLACE FUNCTION public.schemaheal_sync_a401b028b84e55aa() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF NEW.label IS NULL THEN
    NEW.label := lower(new.name) || '#' || new.id;
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_a401b028b84e55aa BEFORE INSERT OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_a401b028b84e55aa();
-- backfill: stop key
SELECT (SELECT to_jsonb(sh_last.*) FROM (SELECT id FROM public.users ORDER BY id DESC LIMIT 1) AS sh_last)::text;
-- backfill: first batch
WITH sh_batch AS (SELECT id FROM public.users WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.users, $1::jsonb)) ORDER BY id LIMIT $2), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.users AS sh_t SET label = sh_t.label WHERE sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: next batch
WITH sh_batch AS (SELECT id FROM public.users WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.users, $1::jsonb)) AND id > (SELECT id FROM jsonb_populate_record(NULL::public.users, $2::jsonb)) ORDER BY id LIMIT $3), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.users AS sh_t SET label = sh_t.label WHERE sh_t.id > (SELECT id FROM jsonb_populate_record(NULL::public.users, $2::jsonb)) AND sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: rows left unconverted
SELECT count(*) FROM public.users WHERE label IS NULL;
-- enforce (transaction)
ALTER TABLE public.users DROP CONSTRAINT IF EXISTS schemaheal_nn_a401b028b84e55aa, ADD CONSTRAINT schemaheal_nn_a401b028b84e55aa CHECK (label IS NOT NULL) NOT VALID;
-- enforce (transaction, long)
ALTER TABLE public.users VALIDATE CONSTRAINT schemaheal_nn_a401b028b84e55aa;
-- enforce (transaction)
ALTER TABLE public.users ALTER COLUMN label SET NOT NULL; ALTER TABLE public.users DROP CONSTRAINT IF EXISTS schemaheal_nn_a401b028b84e55aa;
-- contract (transaction)
DROP TRIGGER IF EXISTS schemaheal_sync_a401b028b84e55aa ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_a401b028b84e55aa();
