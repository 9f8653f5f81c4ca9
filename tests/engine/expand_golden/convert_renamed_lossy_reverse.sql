-- expand (one transaction)
ALTER TABLE billing."Invoices" ADD COLUMN IF NOT EXISTS amount_cents bigint;
CREATE OR REPLACE FUNCTION billing.schemaheal_sync_48d7cb0567c303ef() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.amount_cents IS NULL THEN
      NEW.amount_cents := CAST(round(new.amount * 100) AS bigint);
    ELSE
      NEW.amount := CAST(new.amount_cents / 100.0 AS numeric(12, 2));
    END IF;
  ELSIF NEW.amount::text IS DISTINCT FROM OLD.amount::text THEN
    NEW.amount_cents := CAST(round(new.amount * 100) AS bigint);
  ELSIF NEW.amount_cents::text IS DISTINCT FROM OLD.amount_cents::text THEN
    NEW.amount := CAST(new.amount_cents / 100.0 AS numeric(12, 2));
  ELSIF NEW.amount_cents IS NULL THEN
    NEW.amount_cents := CAST(round(new.amount * 100) AS bigint);
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_48d7cb0567c303ef BEFORE INSERT OR UPDATE ON billing."Invoices" FOR EACH ROW EXECUTE FUNCTION billing.schemaheal_sync_48d7cb0567c303ef();
-- backfill: stop key
SELECT (SELECT to_jsonb(sh_last.*) FROM (SELECT tenant, no FROM billing."Invoices" ORDER BY tenant DESC, no DESC LIMIT 1) AS sh_last)::text;
-- backfill: first batch
WITH sh_batch AS (SELECT tenant, no FROM billing."Invoices" WHERE (tenant, no) <= (SELECT tenant, no FROM jsonb_populate_record(NULL::billing."Invoices", $1::jsonb)) ORDER BY tenant, no LIMIT $2), sh_last AS (SELECT tenant, no FROM sh_batch ORDER BY tenant DESC, no DESC LIMIT 1), sh_touched AS (UPDATE billing."Invoices" AS sh_t SET amount_cents = sh_t.amount_cents WHERE (sh_t.tenant, sh_t.no) <= (SELECT tenant, no FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: next batch
WITH sh_batch AS (SELECT tenant, no FROM billing."Invoices" WHERE (tenant, no) <= (SELECT tenant, no FROM jsonb_populate_record(NULL::billing."Invoices", $1::jsonb)) AND (tenant, no) > (SELECT tenant, no FROM jsonb_populate_record(NULL::billing."Invoices", $2::jsonb)) ORDER BY tenant, no LIMIT $3), sh_last AS (SELECT tenant, no FROM sh_batch ORDER BY tenant DESC, no DESC LIMIT 1), sh_touched AS (UPDATE billing."Invoices" AS sh_t SET amount_cents = sh_t.amount_cents WHERE (sh_t.tenant, sh_t.no) > (SELECT tenant, no FROM jsonb_populate_record(NULL::billing."Invoices", $2::jsonb)) AND (sh_t.tenant, sh_t.no) <= (SELECT tenant, no FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: rows left unconverted
SELECT count(*) FROM billing."Invoices" WHERE amount_cents IS NULL AND (round(amount * 100)::bigint) IS NOT NULL;
-- contract (transaction)
DROP TRIGGER IF EXISTS schemaheal_sync_48d7cb0567c303ef ON billing."Invoices"; DROP FUNCTION IF EXISTS billing.schemaheal_sync_48d7cb0567c303ef();
-- contract (transaction, drops a column)
ALTER TABLE billing."Invoices" DROP COLUMN IF EXISTS amount;
