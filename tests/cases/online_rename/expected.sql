BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.users ADD COLUMN IF NOT EXISTS full_name text;
DO $sh$
-- give full_name what name has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
DECLARE
  rel regclass := 'public.users'::regclass;
  source text := 'name';
  target text := 'full_name';
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
DO $sh$
-- give contact what email has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
DECLARE
  rel regclass := 'public.users'::regclass;
  source text := 'email';
  target text := 'contact';
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
-- contract (not run by the heal): DO $sh$
-- -- give full_name what name has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
-- DECLARE
--   rel regclass := 'public.users'::regclass;
--   source text := 'name';
--   target text := 'full_name';
--   part regclass;
--   r record;
-- BEGIN
--   -- the table, then each partition (a partition's own settings and grants)
--   FOR part IN SELECT t.relid FROM (SELECT rel AS relid, 0 AS level UNION ALL
--       SELECT relid, level FROM pg_partition_tree(rel) WHERE level > 0) AS t
--       ORDER BY t.level, t.relid::text LOOP
--     FOR r IN SELECT c.command, c.unfit FROM (
--       WITH s AS (SELECT a.attnum AS num, a.attacl,
--                         coalesce(a.attstattarget::int, -1) AS stat, a.attoptions,
--                         a.attstorage::text AS storage, a.attcompression::text AS comp,
--                         t.typstorage::text AS plain_storage
--                    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
--                   WHERE a.attrelid = part AND a.attname = source AND NOT a.attisdropped),
--            d AS (SELECT a.attnum AS num, coalesce(a.attstattarget::int, -1) AS stat,
--                         a.attoptions, a.attstorage::text AS storage,
--                         a.attcompression::text AS comp, t.typstorage::text AS plain_storage
--                    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
--                   WHERE a.attrelid = part AND a.attname = target AND NOT a.attisdropped),
--            n AS (SELECT CASE s.storage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
--                           WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END AS storage,
--                         CASE s.comp WHEN 'l' THEN 'lz4' ELSE 'pglz' END AS comp FROM s)
--       SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', x.privilege_type, target, part,
--                CASE x.grantee WHEN 0 THEN 'PUBLIC'
--                     ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
--                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), false
--         FROM s, d, aclexplode(s.attacl) AS x
--       UNION ALL
--       SELECT format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS %s', part, target, s.stat),
--              false
--         FROM s, d WHERE s.stat >= 0 AND d.stat < 0
--       UNION ALL
--       SELECT format('ALTER TABLE %s ALTER COLUMN %I SET (%s)', part, target, o), false
--         FROM s, d, unnest(s.attoptions) AS o
--        WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')
--          AND split_part(o, '=', 1) <> ALL (SELECT split_part(p, '=', 1)
--                                              FROM unnest(d.attoptions) AS p)
--       UNION ALL
--       SELECT CASE WHEN d.plain_storage = 'p' THEN 'storage ' || n.storage
--              ELSE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', part, target,
--                          n.storage) END, d.plain_storage = 'p'
--         FROM s, d, n WHERE s.storage <> s.plain_storage AND d.storage = d.plain_storage
--       UNION ALL
--       SELECT CASE WHEN d.plain_storage = 'p' THEN 'compression ' || n.comp
--              ELSE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', part, target,
--                          n.comp) END, d.plain_storage = 'p'
--         FROM s, d, n WHERE s.comp <> '' AND d.comp = ''
--       UNION ALL
--       SELECT format('COMMENT ON COLUMN %s.%I IS %L', part, target,
--                     col_description(part, s.num)), false
--         FROM s, d WHERE col_description(part, d.num) IS NULL
--          AND col_description(part, s.num) IS NOT NULL
--       UNION ALL
--       SELECT format('SECURITY LABEL FOR %I ON COLUMN %s.%I IS %L', l.provider, part, target,
--                     l.label), false
--         FROM s, d, pg_seclabel AS l
--        WHERE l.classoid = 'pg_class'::regclass AND l.objoid = part AND l.objsubid = s.num
--          AND NOT EXISTS (SELECT FROM pg_seclabel AS e WHERE e.classoid = l.classoid
--                            AND e.objoid = part AND e.objsubid = d.num
--                            AND e.provider = l.provider)
--     ) AS c (command, unfit) LOOP
--       IF r.unfit THEN
--         RAISE WARNING 'schemaheal: %.% has %, which %.% cannot have (its type is stored '
--           'inline): not carried', part, source, r.command, part, target;
--         CONTINUE;
--       END IF;
--       BEGIN
--         EXECUTE r.command;
--       EXCEPTION WHEN invalid_parameter_value THEN
--         RAISE EXCEPTION 'schemaheal: %.% cannot be given what %.% has (%): %', part, target,
--           part, source, r.command, SQLERRM USING HINT = 'load the security label provider in '
--           || 'the server (shared_preload_libraries), then retry; or remove the label from '
--           || source;
--       END;
--     END LOOP;
--   END LOOP;
-- END
-- $sh$; DROP TRIGGER IF EXISTS schemaheal_sync_d5469f6751d729fc ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_d5469f6751d729fc();
-- contract (not run by the heal): ALTER TABLE public.users DROP COLUMN IF EXISTS name;
-- contract (not run by the heal): DO $sh$
-- -- give contact what email has of its own: column privileges, statistics target, attribute options, storage, compression, comment (when it has none) and security labels
-- DECLARE
--   rel regclass := 'public.users'::regclass;
--   source text := 'email';
--   target text := 'contact';
--   part regclass;
--   r record;
-- BEGIN
--   -- the table, then each partition (a partition's own settings and grants)
--   FOR part IN SELECT t.relid FROM (SELECT rel AS relid, 0 AS level UNION ALL
--       SELECT relid, level FROM pg_partition_tree(rel) WHERE level > 0) AS t
--       ORDER BY t.level, t.relid::text LOOP
--     FOR r IN SELECT c.command, c.unfit FROM (
--       WITH s AS (SELECT a.attnum AS num, a.attacl,
--                         coalesce(a.attstattarget::int, -1) AS stat, a.attoptions,
--                         a.attstorage::text AS storage, a.attcompression::text AS comp,
--                         t.typstorage::text AS plain_storage
--                    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
--                   WHERE a.attrelid = part AND a.attname = source AND NOT a.attisdropped),
--            d AS (SELECT a.attnum AS num, coalesce(a.attstattarget::int, -1) AS stat,
--                         a.attoptions, a.attstorage::text AS storage,
--                         a.attcompression::text AS comp, t.typstorage::text AS plain_storage
--                    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
--                   WHERE a.attrelid = part AND a.attname = target AND NOT a.attisdropped),
--            n AS (SELECT CASE s.storage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL'
--                           WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END AS storage,
--                         CASE s.comp WHEN 'l' THEN 'lz4' ELSE 'pglz' END AS comp FROM s)
--       SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', x.privilege_type, target, part,
--                CASE x.grantee WHEN 0 THEN 'PUBLIC'
--                     ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
--                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), false
--         FROM s, d, aclexplode(s.attacl) AS x
--       UNION ALL
--       SELECT format('ALTER TABLE %s ALTER COLUMN %I SET STATISTICS %s', part, target, s.stat),
--              false
--         FROM s, d WHERE s.stat >= 0 AND d.stat < 0
--       UNION ALL
--       SELECT format('ALTER TABLE %s ALTER COLUMN %I SET (%s)', part, target, o), false
--         FROM s, d, unnest(s.attoptions) AS o
--        WHERE split_part(o, '=', 1) IN ('n_distinct', 'n_distinct_inherited')
--          AND split_part(o, '=', 1) <> ALL (SELECT split_part(p, '=', 1)
--                                              FROM unnest(d.attoptions) AS p)
--       UNION ALL
--       SELECT CASE WHEN d.plain_storage = 'p' THEN 'storage ' || n.storage
--              ELSE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', part, target,
--                          n.storage) END, d.plain_storage = 'p'
--         FROM s, d, n WHERE s.storage <> s.plain_storage AND d.storage = d.plain_storage
--       UNION ALL
--       SELECT CASE WHEN d.plain_storage = 'p' THEN 'compression ' || n.comp
--              ELSE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', part, target,
--                          n.comp) END, d.plain_storage = 'p'
--         FROM s, d, n WHERE s.comp <> '' AND d.comp = ''
--       UNION ALL
--       SELECT format('COMMENT ON COLUMN %s.%I IS %L', part, target,
--                     col_description(part, s.num)), false
--         FROM s, d WHERE col_description(part, d.num) IS NULL
--          AND col_description(part, s.num) IS NOT NULL
--       UNION ALL
--       SELECT format('SECURITY LABEL FOR %I ON COLUMN %s.%I IS %L', l.provider, part, target,
--                     l.label), false
--         FROM s, d, pg_seclabel AS l
--        WHERE l.classoid = 'pg_class'::regclass AND l.objoid = part AND l.objsubid = s.num
--          AND NOT EXISTS (SELECT FROM pg_seclabel AS e WHERE e.classoid = l.classoid
--                            AND e.objoid = part AND e.objsubid = d.num
--                            AND e.provider = l.provider)
--     ) AS c (command, unfit) LOOP
--       IF r.unfit THEN
--         RAISE WARNING 'schemaheal: %.% has %, which %.% cannot have (its type is stored '
--           'inline): not carried', part, source, r.command, part, target;
--         CONTINUE;
--       END IF;
--       BEGIN
--         EXECUTE r.command;
--       EXCEPTION WHEN invalid_parameter_value THEN
--         RAISE EXCEPTION 'schemaheal: %.% cannot be given what %.% has (%): %', part, target,
--           part, source, r.command, SQLERRM USING HINT = 'load the security label provider in '
--           || 'the server (shared_preload_libraries), then retry; or remove the label from '
--           || source;
--       END;
--     END LOOP;
--   END LOOP;
-- END
-- $sh$; DROP TRIGGER IF EXISTS schemaheal_sync_48178b454b9da54b ON public.users; DROP FUNCTION IF EXISTS public.schemaheal_sync_48178b454b9da54b();
-- contract (not run by the heal): ALTER TABLE public.users DROP COLUMN IF EXISTS email;
