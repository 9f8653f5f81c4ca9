BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
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
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS contact text;
CREATE OR REPLACE FUNCTION public.schemaheal_sync_48178b454b9da54b() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.contact IS NULL THEN
      NEW.contact := lower(new.email);
    ELSE
      NEW.email := new.contact;
    END IF;
  ELSIF NEW.email::text IS DISTINCT FROM OLD.email::text THEN
    NEW.contact := lower(new.email);
  ELSIF NEW.contact::text IS DISTINCT FROM OLD.contact::text THEN
    NEW.email := new.contact;
  ELSIF NEW.contact IS NULL THEN
    NEW.contact := lower(new.email);
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_48178b454b9da54b BEFORE INSERT OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_48178b454b9da54b();
COMMIT;
-- drift extra-column public.users.email
-- drift extra-column public.users.name
-- migration rename public.users.full_name:d5469f6751d729fc
-- migration convert public.users.contact:48178b454b9da54b
-- contract (not run by the heal): DROP TRIGGER IF EXISTS schemaheal_sync_d5469f6751d729fc ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_d5469f6751d729fc();
-- contract (not run by the heal): ALTER TABLE public.users DROP COLUMN IF EXISTS name;
-- contract (not run by the heal): DROP TRIGGER IF EXISTS schemaheal_sync_48178b454b9da54b ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_48178b454b9da54b();
-- contract (not run by the heal): ALTER TABLE public.users DROP COLUMN IF EXISTS email;
