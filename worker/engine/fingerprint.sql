-- schemaheal: the catalog fingerprint of the schemas a manifest owns, in one query.
-- Every catalog row that inspection reads, or whose name its deparsed texts print, contributes
-- its tuple identity (ctid) and the transaction that wrote it (xmin). Any transactional catalog
-- change -- an INSERT, UPDATE or DELETE of such a row, which is what every DDL does -- gives a
-- row a new (ctid, xmin) or removes one, and so changes the count or the sum of hashes.
-- Ours: the relations of the manifest's schemas and the partitions below them at any depth,
-- wherever those live (inspection reads them as part of their tables).
-- Namespaces: the connection pins search_path = pg_catalog, so the texts print every other
-- object schema-qualified. Of pg_namespace, the rows hashed are the manifest's schemas *by name*
-- (present or not: creating or renaming a schema to one of those names adds a row) and the
-- schema of every relation, type, function, operator, collation, text search configuration or
-- dictionary, extension and used operator class whose row is hashed, and of regnamespace
-- constants; a schema nothing of ours names -- another service's, created or dropped -- leaves
-- the fingerprint alone.
-- The only non-transactional (in-place) catalog writes are statistics (relpages, reltuples,
-- relallvisible, relhasindex, frozen xids), which inspection's answer for an empty plan does not
-- depend on. VACUUM FULL of a catalog or a restore changes ctids: the fingerprint differs and
-- the full inspection runs, which is only slower, never wrong.
-- $1: the schemas. Returns the fingerprint and the snapshot's xmin (an xid8: the horizon that
-- tells when 32-bit xmins may have wrapped around).
-- Sets of oids are arrays, so that each catalog is read through its index (= ANY (array)); a
-- catalog read for both its rows and their namespaces is read once (a CTE used twice).
WITH RECURSIVE ns AS (
    SELECT array_agg(oid) AS oids FROM pg_namespace WHERE nspname = ANY ($1::text[])
), own AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_class
     WHERE relnamespace = ANY ((SELECT oids FROM ns)::oid[])
), below(oid) AS (  -- partitions (of tables and indexes) at any depth, in whatever schema
    SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY ((SELECT oids FROM own)::oid[])
    UNION
    SELECT h.inhrelid FROM below b JOIN pg_inherits h ON h.inhparent = b.oid
), rel AS (  -- ours: the relations of our schemas and the partitions below them
    SELECT (SELECT oids FROM own) || coalesce(array_agg(oid), '{}') AS oids FROM below
), refrel AS (  -- our relations and those our foreign keys point at
    SELECT (SELECT oids FROM rel) || coalesce(array_agg(confrelid), '{}') AS oids
      FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY ((SELECT oids FROM rel)::oid[])
), defs AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_attrdef
     WHERE adrelid = ANY ((SELECT oids FROM rel)::oid[])
), cons AS (  -- of our tables (by index), and of our domains (few namespaces: a cheap scan)
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM (
        SELECT oid FROM pg_constraint WHERE conrelid = ANY ((SELECT oids FROM rel)::oid[])
        UNION ALL
        SELECT oid FROM pg_constraint
         WHERE contypid <> 0 AND connamespace = ANY ((SELECT oids FROM ns)::oid[])) AS x
), dep AS (  -- what our objects refer to by name: functions, operators, types, collations, ...
    SELECT classid, refclassid, refobjid, refobjsubid FROM pg_depend
     WHERE (classid = 'pg_class'::regclass AND objid = ANY ((SELECT oids FROM rel)::oid[]))
        OR (classid = 'pg_attrdef'::regclass AND objid = ANY ((SELECT oids FROM defs)::oid[]))
        OR (classid = 'pg_constraint'::regclass AND objid = ANY ((SELECT oids FROM cons)::oid[]))
), typ AS (  -- our types, the types of our columns, and what they refer to
    SELECT array_agg(t) AS oids FROM (
        SELECT oid FROM pg_type WHERE typnamespace = ANY ((SELECT oids FROM ns)::oid[])
        UNION ALL
        SELECT atttypid FROM pg_attribute WHERE attrelid = ANY ((SELECT oids FROM refrel)::oid[])
        UNION ALL
        SELECT refobjid FROM dep WHERE refclassid = 'pg_type'::regclass) AS x(t)
), alltyp AS (  -- and their element types
    SELECT (SELECT oids FROM typ) || coalesce(array_agg(typelem), '{}') AS oids FROM pg_type
     WHERE oid = ANY ((SELECT oids FROM typ)::oid[]) AND typelem <> 0
), refs AS (  -- the objects `dep` names, by catalog; not columns: a column's relation is ours
    SELECT refclassid, array_agg(refobjid) AS oids  -- or one our foreign keys point at (refrel)
      FROM dep WHERE refobjsubid = 0 GROUP BY refclassid
), cls AS (  -- our relations, those our FKs point at, and every one we name (sequences, ...)
    SELECT ctid, xmin, relnamespace AS nsp FROM pg_class
     WHERE oid = ANY ((SELECT oids FROM refrel)::oid[])
        OR oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_class'::regclass)::oid[])
), typs AS (
    SELECT ctid, xmin, typnamespace AS nsp FROM pg_type
     WHERE oid = ANY ((SELECT oids FROM alltyp)::oid[])
), procs AS (
    SELECT ctid, xmin, pronamespace AS nsp FROM pg_proc
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_proc'::regclass)::oid[])
), oprs AS (
    SELECT ctid, xmin, oprnamespace AS nsp FROM pg_operator
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_operator'::regclass)::oid[])
), colls AS (
    SELECT ctid, xmin, collnamespace AS nsp FROM pg_collation
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_collation'::regclass)::oid[])
), tscfgs AS (  -- regconfig constants
    SELECT ctid, xmin, cfgnamespace AS nsp FROM pg_ts_config
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_ts_config'::regclass)::oid[])
), tsdicts AS (  -- regdictionary constants
    SELECT ctid, xmin, dictnamespace AS nsp FROM pg_ts_dict
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_ts_dict'::regclass)::oid[])
), opcs AS (  -- whole; the namespaces only of those our indexes use
    SELECT ctid, xmin, CASE WHEN oid = ANY (
               (SELECT oids FROM refs WHERE refclassid = 'pg_opclass'::regclass)::oid[])
           THEN opcnamespace END AS nsp FROM pg_opclass
), exts AS (
    SELECT ctid, xmin, extnamespace AS nsp FROM pg_extension
), named(nsp) AS (  -- the namespaces whose names the deparsed texts print
    SELECT nsp FROM cls UNION ALL SELECT nsp FROM typs UNION ALL SELECT nsp FROM procs
    UNION ALL SELECT nsp FROM oprs UNION ALL SELECT nsp FROM colls UNION ALL SELECT nsp FROM tscfgs
    UNION ALL SELECT nsp FROM tsdicts UNION ALL SELECT nsp FROM opcs UNION ALL SELECT nsp FROM exts
    UNION ALL  -- regnamespace constants
    SELECT unnest(oids) FROM refs WHERE refclassid = 'pg_namespace'::regclass
), tuples(t) AS (
    SELECT 'n' || ctid::text || xmin::text FROM pg_namespace  -- ours by name, present or not
     WHERE nspname = ANY ($1::text[]) OR oid = ANY (ARRAY(SELECT DISTINCT nsp FROM named))
    UNION ALL
    SELECT 'c' || ctid::text || xmin::text FROM cls
    UNION ALL
    SELECT 'a' || ctid::text || xmin::text FROM pg_attribute  -- system columns never change
     WHERE attrelid = ANY ((SELECT oids FROM refrel)::oid[]) AND attnum > 0
    UNION ALL
    SELECT 'd' || ctid::text || xmin::text FROM pg_attrdef WHERE oid = ANY ((SELECT oids FROM defs)::oid[])
    UNION ALL
    SELECT 'k' || ctid::text || xmin::text FROM pg_constraint
     WHERE oid = ANY ((SELECT oids FROM cons)::oid[])
    UNION ALL
    SELECT 'i' || ctid::text || xmin::text FROM pg_index
     WHERE indrelid = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL
    SELECT 'm' || ctid::text || xmin::text FROM pg_description
     WHERE objoid = ANY ((SELECT oids FROM rel)::oid[]) OR objoid = ANY ((SELECT oids FROM alltyp)::oid[])
    UNION ALL
    SELECT 't' || ctid::text || xmin::text FROM typs
    UNION ALL
    SELECT 'e' || ctid::text || xmin::text FROM pg_enum
     WHERE enumtypid = ANY ((SELECT oids FROM alltyp)::oid[])
    UNION ALL
    SELECT 's' || ctid::text || xmin::text FROM pg_sequence
     WHERE seqrelid = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL  -- ownership of sequences (OWNED BY) and identity columns' sequences
    SELECT 'p' || ctid::text || xmin::text FROM pg_depend
     WHERE classid = 'pg_class'::regclass AND objid = ANY ((SELECT oids FROM rel)::oid[])
       AND deptype IN ('a', 'i')
    UNION ALL  -- our tables' parents and partitions
    SELECT 'h' || ctid::text || xmin::text FROM pg_inherits
     WHERE inhrelid = ANY ((SELECT oids FROM rel)::oid[]) OR inhparent = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL
    SELECT 'x' || ctid::text || xmin::text FROM exts
    UNION ALL
    SELECT 'o' || ctid::text || xmin::text FROM opcs
    UNION ALL
    SELECT 'w' || ctid::text || xmin::text FROM pg_am
    UNION ALL
    SELECT 'f' || ctid::text || xmin::text FROM procs
    UNION ALL
    SELECT 'r' || ctid::text || xmin::text FROM oprs
    UNION ALL
    SELECT 'l' || ctid::text || xmin::text FROM colls
    UNION ALL
    SELECT 'g' || ctid::text || xmin::text FROM tscfgs
    UNION ALL
    SELECT 'y' || ctid::text || xmin::text FROM tsdicts
)
SELECT current_setting('server_version_num') || ':' || count(*)::text || ':'
       || coalesce(sum(hashtextextended(t, 0)::numeric), 0)::text AS fingerprint,
       pg_snapshot_xmin(pg_current_snapshot())::text::numeric AS horizon
  FROM tuples
