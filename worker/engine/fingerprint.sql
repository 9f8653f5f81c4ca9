-- schemaheal: the catalog fingerprint of the schemas a manifest owns, in one query.
-- Every catalog row that inspection reads, or whose name its deparsed texts print, contributes
-- its tuple identity (ctid) and the transaction that wrote it (xmin). Any transactional catalog
-- change -- an INSERT, UPDATE or DELETE of such a row, which is what every DDL does -- gives a
-- row a new (ctid, xmin) or removes one, and so changes the count or the sum of hashes.
-- The only non-transactional (in-place) catalog writes are statistics (relpages, reltuples,
-- relallvisible, relhasindex, frozen xids), which inspection's answer for an empty plan does not
-- depend on. VACUUM FULL of a catalog or a restore changes ctids: the fingerprint differs and
-- the full inspection runs, which is only slower, never wrong.
-- $1: the schemas. Returns the fingerprint and the snapshot's xmin (an xid8: the horizon that
-- tells when 32-bit xmins may have wrapped around).
-- Sets of oids are arrays, so that each catalog is read through its index (= ANY (array)).
WITH ns AS (
    SELECT array_agg(oid) AS oids FROM pg_namespace WHERE nspname = ANY ($1::text[])
), rel AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_class
     WHERE relnamespace = ANY ((SELECT oids FROM ns)::oid[])
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
    SELECT classid, refclassid, refobjid FROM pg_depend
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
), tuples(t) AS (
    SELECT 'n' || ctid::text || xmin::text FROM pg_namespace
    UNION ALL
    SELECT 'c' || ctid::text || xmin::text FROM pg_class
     WHERE oid = ANY ((SELECT oids FROM refrel)::oid[])
        OR oid = ANY (ARRAY(SELECT refobjid FROM dep  -- sequences named by defaults
                             WHERE classid = 'pg_attrdef'::regclass
                               AND refclassid = 'pg_class'::regclass))
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
    SELECT 't' || ctid::text || xmin::text FROM pg_type WHERE oid = ANY ((SELECT oids FROM alltyp)::oid[])
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
    UNION ALL
    SELECT 'x' || ctid::text || xmin::text FROM pg_extension
    UNION ALL
    SELECT 'o' || ctid::text || xmin::text FROM pg_opclass
    UNION ALL
    SELECT 'w' || ctid::text || xmin::text FROM pg_am
    UNION ALL
    SELECT 'f' || ctid::text || xmin::text FROM pg_proc
     WHERE oid = ANY (ARRAY(SELECT refobjid FROM dep WHERE refclassid = 'pg_proc'::regclass))
    UNION ALL
    SELECT 'r' || ctid::text || xmin::text FROM pg_operator
     WHERE oid = ANY (ARRAY(SELECT refobjid FROM dep WHERE refclassid = 'pg_operator'::regclass))
    UNION ALL
    SELECT 'l' || ctid::text || xmin::text FROM pg_collation
     WHERE oid = ANY (ARRAY(SELECT refobjid FROM dep WHERE refclassid = 'pg_collation'::regclass))
)
SELECT current_setting('server_version_num') || ':' || count(*)::text || ':'
       || coalesce(sum(hashtextextended(t, 0)::numeric), 0)::text AS fingerprint,
       pg_snapshot_xmin(pg_current_snapshot())::text::numeric AS horizon
  FROM tuples
