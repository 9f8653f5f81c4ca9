-- expand (one transaction)
ALTER TABLE public.orders ADD COLUMN IF NOT EXISTS title__sh_new text;
CREATE OR REPLACE FUNCTION public.schemaheal_sync_c34880dcae6a27f2() RETURNS trigger LANGUAGE plpgsql AS $sh$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.title__sh_new IS NULL THEN
      NEW.title__sh_new := CAST(new.title AS text);
    END IF;
  ELSIF NEW.title::text IS DISTINCT FROM OLD.title::text THEN
    NEW.title__sh_new := CAST(new.title AS text);
  ELSIF NEW.title__sh_new IS NULL THEN
    NEW.title__sh_new := CAST(new.title AS text);
  END IF;
  RETURN NEW;
END
$sh$;
CREATE OR REPLACE TRIGGER schemaheal_sync_c34880dcae6a27f2 BEFORE INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.schemaheal_sync_c34880dcae6a27f2();
-- backfill: stop key
SELECT (SELECT to_jsonb(sh_last.*) FROM (SELECT id FROM public.orders ORDER BY id DESC LIMIT 1) AS sh_last)::text;
-- backfill: first batch
WITH sh_batch AS (SELECT id FROM public.orders WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.orders, $1::jsonb)) ORDER BY id LIMIT $2), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.orders AS sh_t SET title__sh_new = sh_t.title__sh_new WHERE sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: next batch
WITH sh_batch AS (SELECT id FROM public.orders WHERE id <= (SELECT id FROM jsonb_populate_record(NULL::public.orders, $1::jsonb)) AND id > (SELECT id FROM jsonb_populate_record(NULL::public.orders, $2::jsonb)) ORDER BY id LIMIT $3), sh_last AS (SELECT id FROM sh_batch ORDER BY id DESC LIMIT 1), sh_touched AS (UPDATE public.orders AS sh_t SET title__sh_new = sh_t.title__sh_new WHERE sh_t.id > (SELECT id FROM jsonb_populate_record(NULL::public.orders, $2::jsonb)) AND sh_t.id <= (SELECT id FROM sh_last) RETURNING 1) SELECT (SELECT count(*) FROM sh_batch) AS scanned, (SELECT count(*) FROM sh_touched) AS touched, (SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key WHERE EXISTS (SELECT FROM sh_batch);
-- backfill: rows left unconverted
SELECT count(*) FROM public.orders WHERE title__sh_new IS NULL AND (title::text) IS NOT NULL;
-- enforce (no transaction, long)
-- an equivalent on the shadow column of each index on the old one, built CONCURRENTLY (read from the catalog when the step runs);
-- enforce (transaction)
DO $sh$
DECLARE
  rel regclass := 'public.orders'::regclass;
  fk record; fks text[] := '{}'; stmt text; pk name; dflt text; seq text;
  moved text[] := '{}'; users text;
  ident "char"; next_value bigint; step bigint;
BEGIN
  IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = rel
      AND attname = 'title__sh_new' AND NOT attisdropped) THEN
    RETURN;  -- swapped already
  END IF;
  SELECT string_agg(pg_describe_object(d.classid, d.objid, d.objsubid), ', ' ORDER BY 1)
    INTO users FROM pg_depend d
    LEFT JOIN pg_constraint c
      ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
    LEFT JOIN pg_class k ON d.classid = 'pg_class'::regclass AND k.oid = d.objid
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = rel AND d.refobjsubid =
        (SELECT attnum FROM pg_attribute WHERE attrelid = rel
          AND attname = 'title')
      AND d.classid <> 'pg_attrdef'::regclass AND coalesce(c.contype, '') NOT IN
        ('p', 'f', 'c', 'n') AND coalesce(k.relkind, '') <> 'S';
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'schemaheal: % use %.%, which the swap would leave behind',
      users, 'public.orders', 'title'
      USING HINT = 'drop them, or re-create them on title__sh_new (the column that takes the name), then retry';
  END IF;
  DROP TRIGGER IF EXISTS schemaheal_sync_c34880dcae6a27f2 ON public.orders;
  DROP FUNCTION IF EXISTS public.schemaheal_sync_c34880dcae6a27f2();
  SELECT pg_get_expr(d.adbin, d.adrelid), a.attidentity INTO dflt, ident
    FROM pg_attribute a LEFT JOIN pg_attrdef d
      ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = rel AND a.attname = 'title';
  seq := pg_get_serial_sequence(rel::text, 'title');
  FOR fk IN SELECT conname, regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '')
        AS def FROM pg_constraint WHERE conrelid = rel AND contype IN ('f', 'c')
        AND conparentid = 0
        AND conkey @> ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = rel
          AND attname = 'title')] ORDER BY conname LOOP
    moved := moved || format('ALTER TABLE %s ADD CONSTRAINT %I %s NOT VALID',
      rel, fk.conname, fk.def);
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', rel, fk.conname);
  END LOOP;
  IF dflt IS NOT NULL THEN
    ALTER TABLE public.orders ALTER COLUMN title DROP DEFAULT;
  END IF;
  IF ident <> '' THEN
    SELECT COALESCE(pg_sequence_last_value(seq::regclass) + s.seqincrement,
        s.seqstart), s.seqincrement INTO next_value, step
      FROM pg_sequence s WHERE s.seqrelid = seq::regclass;
    ALTER TABLE public.orders ALTER COLUMN title DROP IDENTITY;
  END IF;
  ALTER TABLE public.orders ALTER COLUMN title DROP NOT NULL;
  ALTER TABLE public.orders RENAME COLUMN title TO title__sh_old;
  ALTER TABLE public.orders RENAME COLUMN title__sh_new TO title;
  IF ident <> '' THEN
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I ADD GENERATED %s AS IDENTITY '
      '(START WITH %s INCREMENT BY %s)', rel,
      'title', CASE ident WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END,
      next_value, step);
  ELSIF dflt IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', rel, 'title',
      dflt);
  END IF;
  IF seq IS NOT NULL AND ident = '' THEN
    EXECUTE format('ALTER SEQUENCE %s OWNED BY %s.%I', seq, rel, 'title');
  END IF;
  FOR stmt IN SELECT format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', rel, conname,
      'orders_title_not_null') FROM pg_constraint WHERE conrelid = rel AND contype = 'n'
      AND conname = 'orders_title__sh_new_not_null' AND NOT EXISTS (SELECT FROM pg_constraint
        WHERE conrelid = rel AND conname = 'orders_title_not_null') LOOP
    EXECUTE stmt;
  END LOOP;
  FOREACH stmt IN ARRAY moved LOOP EXECUTE stmt; END LOOP;
END
$sh$; DO $sh$
-- give title what title__sh_old has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
DECLARE
  rel regclass := 'public.orders'::regclass;
  source text := 'title__sh_old';
  target text := 'title';
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
-- enforce (transaction, long)
DO $sh$
DECLARE c record;
BEGIN
  FOR c IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
      WHERE (confrelid = 'public.orders'::regclass AND contype = 'f'
          OR conrelid = 'public.orders'::regclass AND contype IN ('f', 'c')
            AND conparentid = 0)
        AND NOT convalidated ORDER BY 1, 2 LOOP
    BEGIN
      EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', c.tbl, c.conname);
    EXCEPTION WHEN foreign_key_violation OR check_violation THEN
      RAISE WARNING 'schemaheal: constraint % on % stays NOT VALID: %',
        c.conname, c.tbl, SQLERRM;
    END;
  END LOOP;
END
$sh$;
-- contract (transaction)
DROP TRIGGER IF EXISTS schemaheal_sync_c34880dcae6a27f2 ON public.orders; DROP FUNCTION IF EXISTS public.schemaheal_sync_c34880dcae6a27f2();
-- contract (transaction, drops a column)
ALTER TABLE public.orders DROP COLUMN IF EXISTS title__sh_old;
