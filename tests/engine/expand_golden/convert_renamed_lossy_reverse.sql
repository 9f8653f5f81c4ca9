-- expand (one transaction)
ALTER TABLE billing."Invoices" ADD COLUMN IF NOT EXISTS amount_cents bigint;
DO $sh$
-- give amount_cents what amount has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
DECLARE
  rel regclass := 'billing."Invoices"'::regclass;
  source text := 'amount';
  target text := 'amount_cents';
  part regclass;
  r record;
BEGIN
  -- the table, then each partition (a partition's own settings and grants)
  FOR part IN SELECT t.relid FROM (SELECT rel AS relid, 0 AS level UNION ALL
      SELECT relid, level FROM pg_partition_tree(rel) WHERE level > 0) AS t
      ORDER BY t.level, t.relid::text LOOP
    FOR r IN SELECT c.command, c.unfit FROM (
      WITH s AS (SELECT a.attnum AS num, a.attacl,
                        coalesce(a.attstattarget::int, -1) AS stat, a.attoptions,
                        a.attstorage::text AS storage, a.attcompression::text AS comp,
                        t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = source AND NOT a.attisdropped),
           d AS (SELECT a.attnum AS num, coalesce(a.attstattarget::int, -1) AS stat,
                        a.attoptions, a.attstorage::text AS storage,
                        a.attcompression::text AS comp, t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = target AND NOT a.attisdropped),
           n AS (SELECT CASE s.storage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                          WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END AS storage,
                        CASE s.comp WHEN 'l' THEN 'lz4' ELSE 'pglz' END AS comp FROM s)
      SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', x.privilege_type, target, part,
               CASE x.grantee WHEN 0 THEN 'PUBLIC'
                    ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
               CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), false
        FROM s, d, aclexplode(s.attacl) AS x
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS %s', part, target, s.stat),
             false
        FROM s, d WHERE s.stat >= 0 AND d.stat < 0
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET (%s)', part, target, o), false
        FROM s, d, unnest(s.attoptions) AS o
       WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')
         AND split_part(o, '=', 1) <> ALL (SELECT split_part(p, '=', 1)
                                             FROM unnest(d.attoptions) AS p)
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'storage ' || n.storage
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', part, target,
                         n.storage) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.storage <> s.plain_storage AND d.storage = d.plain_storage
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'compression ' || n.comp
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', part, target,
                         n.comp) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.comp <> '' AND d.comp = ''
      UNION ALL
      SELECT format('COMMENT ON COLUMN %s.%I IS %L', part, target,
                    col_description(part, s.num)), false
        FROM s, d WHERE col_description(part, d.num) IS NULL
         AND col_description(part, s.num) IS NOT NULL
      UNION ALL
      SELECT format('SECURITY LABEL FOR %I ON COLUMN %s.%I IS %L', l.provider, part, target,
                    l.label), false
        FROM s, d, pg_seclabel AS l
       WHERE l.classoid = 'pg_class'::regclass AND l.objoid = part AND l.objsubid = s.num
         AND NOT EXISTS (SELECT FROM pg_seclabel AS e WHERE e.classoid = l.classoid
                           AND e.objoid = part AND e.objsubid = d.num
                           AND e.provider = l.provider)
    ) AS c (command, unfit) LOOP
      IF r.unfit THEN
        RAISE WARNING 'schemaheal: %.% has %, which %.% cannot have (its type is stored '
          'inline): not carried', part, source, r.command, part, target;
        CONTINUE;
      END IF;
      BEGIN
        EXECUTE r.command;
      EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'schemaheal: %.% cannot be given what %.% has (%): %', part, target,
          part, source, r.command, SQLERRM USING HINT = 'load the security label provider in '
          || 'the server (shared_preload_libraries), then retry; or remove the label from '
          || source;
      END;
    END LOOP;
  END LOOP;
END
$sh$;
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
DO $sh$
-- give amount_cents what amount has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
DECLARE
  rel regclass := 'billing."Invoices"'::regclass;
  source text := 'amount';
  target text := 'amount_cents';
  part regclass;
  r record;
BEGIN
  -- the table, then each partition (a partition's own settings and grants)
  FOR part IN SELECT t.relid FROM (SELECT rel AS relid, 0 AS level UNION ALL
      SELECT relid, level FROM pg_partition_tree(rel) WHERE level > 0) AS t
      ORDER BY t.level, t.relid::text LOOP
    FOR r IN SELECT c.command, c.unfit FROM (
      WITH s AS (SELECT a.attnum AS num, a.attacl,
                        coalesce(a.attstattarget::int, -1) AS stat, a.attoptions,
                        a.attstorage::text AS storage, a.attcompression::text AS comp,
                        t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = source AND NOT a.attisdropped),
           d AS (SELECT a.attnum AS num, coalesce(a.attstattarget::int, -1) AS stat,
                        a.attoptions, a.attstorage::text AS storage,
                        a.attcompression::text AS comp, t.typstorage::text AS plain_storage
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = part AND a.attname = target AND NOT a.attisdropped),
           n AS (SELECT CASE s.storage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
                          WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END AS storage,
                        CASE s.comp WHEN 'l' THEN 'lz4' ELSE 'pglz' END AS comp FROM s)
      SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', x.privilege_type, target, part,
               CASE x.grantee WHEN 0 THEN 'PUBLIC'
                    ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
               CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), false
        FROM s, d, aclexplode(s.attacl) AS x
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS %s', part, target, s.stat),
             false
        FROM s, d WHERE s.stat >= 0 AND d.stat < 0
      UNION ALL
      SELECT format('ALTER TABLE %s ALTER COLUMN %I SET (%s)', part, target, o), false
        FROM s, d, unnest(s.attoptions) AS o
       WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')
         AND split_part(o, '=', 1) <> ALL (SELECT split_part(p, '=', 1)
                                             FROM unnest(d.attoptions) AS p)
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'storage ' || n.storage
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', part, target,
                         n.storage) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.storage <> s.plain_storage AND d.storage = d.plain_storage
      UNION ALL
      SELECT CASE WHEN d.plain_storage = 'p' THEN 'compression ' || n.comp
             ELSE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', part, target,
                         n.comp) END, d.plain_storage = 'p'
        FROM s, d, n WHERE s.comp <> '' AND d.comp = ''
      UNION ALL
      SELECT format('COMMENT ON COLUMN %s.%I IS %L', part, target,
                    col_description(part, s.num)), false
        FROM s, d WHERE col_description(part, d.num) IS NULL
         AND col_description(part, s.num) IS NOT NULL
      UNION ALL
      SELECT format('SECURITY LABEL FOR %I ON COLUMN %s.%I IS %L', l.provider, part, target,
                    l.label), false
        FROM s, d, pg_seclabel AS l
       WHERE l.classoid = 'pg_class'::regclass AND l.objoid = part AND l.objsubid = s.num
         AND NOT EXISTS (SELECT FROM pg_seclabel AS e WHERE e.classoid = l.classoid
                           AND e.objoid = part AND e.objsubid = d.num
                           AND e.provider = l.provider)
    ) AS c (command, unfit) LOOP
      IF r.unfit THEN
        RAISE WARNING 'schemaheal: %.% has %, which %.% cannot have (its type is stored '
          'inline): not carried', part, source, r.command, part, target;
        CONTINUE;
      END IF;
      BEGIN
        EXECUTE r.command;
      EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'schemaheal: %.% cannot be given what %.% has (%): %', part, target,
          part, source, r.command, SQLERRM USING HINT = 'load the security label provider in '
          || 'the server (shared_preload_libraries), then retry; or remove the label from '
          || source;
      END;
    END LOOP;
  END LOOP;
END
$sh$; DROP TRIGGER IF EXISTS schemaheal_sync_48d7cb0567c303ef ON billing."Invoices"; DROP FUNCTION IF EXISTS billing.schemaheal_sync_48d7cb0567c303ef();
-- contract (transaction, drops a column)
ALTER TABLE billing."Invoices" DROP COLUMN IF EXISTS amount;
