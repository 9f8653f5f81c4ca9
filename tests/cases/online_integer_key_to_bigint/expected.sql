BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.accounts ADD COLUMN IF NOT EXISTS id__sh_new bigint;
CREATE OR REPLACE FUNCTION public.schemaheal_sync_305407d8b3d6418c() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.id__sh_new IS NULL THEN
      NEW.id__sh_new := new.id;
    END IF;
  ELSIF NEW.id::text IS DISTINCT FROM OLD.id::text THEN
    NEW.id__sh_new := new.id;
  ELSIF NEW.id__sh_new IS NULL THEN
    NEW.id__sh_new := new.id;
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_305407d8b3d6418c BEFORE INSERT OR UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_305407d8b3d6418c();
COMMIT;
-- migration convert public.accounts.id:305407d8b3d6418c
-- contract (not run by the heal): DROP TRIGGER IF EXISTS schemaheal_sync_305407d8b3d6418c ON public.accounts; DROP FUNCTION IF EXISTS public.schemaheal_sync_305407d8b3d6418c();
-- contract (not run by the heal): ALTER TABLE public.accounts DROP COLUMN IF EXISTS id__sh_old;
