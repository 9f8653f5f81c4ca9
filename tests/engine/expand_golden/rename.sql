-- expand (one transaction)
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS full_name text;
CREATE OR REPLACE FUNCTION public.schemaheal_sync_d5469f6751d729fc() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.full_name IS NULL THEN
      NEW.full_name := new.name;
    ELSE
      NEW.name := new.full_name;
    END IF;
  ELSIF NEW.name::text IS DISTINCT FROM OLD.name::text THEN
    NEW.full_name := new.name;
  ELSIF NEW.full_name::text IS DISTINCT FROM OLD.full_name::text THEN
    NEW.name := new.full_name;
  ELSIF NEW.full_name IS NULL THEN
    NEW.full_name := new.name;
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_d5469f6751d729fc BEFORE INSERT OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_d5469f6751d729fc();
-- backfill: stop key
SELECT (SELECT to_jsonb(sh_last.*) FROM (SELECT id FROM public.users ORDER BY id DESC LIMIT 1) AS sh_last)::text;
-- backfill: first batch
WITH sh_batch AS (SELECT id FROM public.users WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.users, $1::jsonb)) ORDER BY id LIMIT $2), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.users AS sh_t SET full_name = sh_t.full_name WHERE sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: next batch
WITH sh_batch AS (SELECT id FROM public.users WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.users, $1::jsonb)) AND id > (SELECT id FROM jsonb_populate_record(NULL::public.users, $2::jsonb)) ORDER BY id LIMIT $3), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.users AS sh_t SET full_name = sh_t.full_name WHERE sh_t.id > (SELECT id FROM jsonb_populate_record(NULL::public.users, $2::jsonb)) AND sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: rows left unconverted
SELECT count(*) FROM public.users WHERE full_name IS NULL;
-- enforce (transaction)
ALTER TABLE public.users DROP CONSTRAINT IF EXISTS schemaheal_nn_d5469f6751d729fc, ADD CONSTRAINT schemaheal_nn_d5469f6751d729fc CHECK (full_name IS NOT NULL) NOT VALID;
-- enforce (transaction, long)
ALTER TABLE public.users VALIDATE CONSTRAINT schemaheal_nn_d5469f6751d729fc;
-- enforce (transaction)
ALTER TABLE public.users ALTER COLUMN full_name SET NOT NULL; ALTER TABLE public.users DROP CONSTRAINT IF EXISTS schemaheal_nn_d5469f6751d729fc;
-- contract (transaction)
DROP TRIGGER IF EXISTS schemaheal_sync_d5469f6751d729fc ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_d5469f6751d729fc();
-- contract (transaction, drops a column)
ALTER TABLE public.users DROP COLUMN IF EXISTS name;
