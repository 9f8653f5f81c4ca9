BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS total numeric(12,2);
CREATE OR REPLACE FUNCTION public.schemaheal_sync_2fd0ccc3b446999c() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF NEW.total IS NULL THEN
    NEW.total := new.quantity * new.unit_price;
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_2fd0ccc3b446999c BEFORE INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_2fd0ccc3b446999c();
COMMIT;
-- migration backfill public.orders.total:2fd0ccc3b446999c
-- contract (not run by the heal): DROP TRIGGER IF EXISTS schemaheal_sync_2fd0ccc3b446999c ON public.orders; DROP FUNCTION IF EXISTS public.schemaheal_sync_2fd0ccc3b446999c();
