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
WITH ns AS (
    SELECT oid FROM pg_namespace WHERE nspname = ANY ($1::text[])
), rel AS (
    SELECT oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)
), refrel AS (  -- our relations and those our foreign keys point at
    SELECT oid FROM rel
    UNION
    SELECT confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid IN (SELECT oid FROM rel)
), obj AS (  -- objects whose expressions are deparsed: defaults, constraints, indexes
    SELECT 'pg_class'::regclass AS classid, oid FROM rel
    UNION ALL
    SELECT 'pg_attrdef'::regclass, oid FROM pg_attrdef WHERE adrelid IN (SELECT oid FROM rel)
    UNION ALL
    SELECT 'pg_constraint'::regclass, oid FROM pg_constraint
     WHERE conrelid IN (SELECT oid FROM rel) OR connamespace IN (SELECT oid FROM ns)
), dep AS (  -- what they refer to by name: functions, operators, types, collations, sequences
    SELECT d.refclassid, d.refobjid FROM pg_depend d JOIN obj ON d.classid = obj.classid
       AND d.objid = obj.oid
), typ AS (  -- our types, the types of our columns, and their element types
    SELECT oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)
    UNION
    SELECT atttypid FROM pg_attribute WHERE attrelid IN (SELECT oid FROM refrel)
    UNION
    SELECT refobjid FROM dep WHERE refclassid = 'pg_type'::regclass
), alltyp AS (
    SELECT oid FROM typ
    UNION
    SELECT typelem FROM pg_type WHERE oid IN (SELECT oid FROM typ) AND typelem <> 0
), tuples(t) AS (
    SELECT 'n' || ctid::text || xmin::text FROM pg_namespace
    UNION ALL
    SELECT 'c' || ctid::text || xmin::text FROM pg_class
     WHERE oid IN (SELECT oid FROM refrel)
        OR oid IN (SELECT refobjid FROM dep WHERE refclassid = 'pg_class'::regclass)
    UNION ALL
    SELECT 'a' || ctid::text || xmin::text FROM pg_attribute
     WHERE attrelid IN (SELECT oid FROM refrel)
    UNION ALL
    SELECT 'd' || ctid::text || xmin::text FROM pg_attrdef WHERE adrelid IN (SELECT oid FROM rel)
    UNION ALL
    SELECT 'k' || ctid::text || xmin::text FROM pg_constraint
     WHERE oid IN (SELECT oid FROM obj WHERE classid = 'pg_constraint'::regclass)
    UNION ALL
    SELECT 'i' || ctid::text || xmin::text FROM pg_index WHERE indrelid IN (SELECT oid FROM rel)
    UNION ALL
    SELECT 'm' || ctid::text || xmin::text FROM pg_description
     WHERE objoid IN (SELECT oid FROM rel) OR objoid IN (SELECT oid FROM alltyp)
    UNION ALL
    SELECT 't' || ctid::text || xmin::text FROM pg_type WHERE oid IN (SELECT oid FROM alltyp)
    UNION ALL
    SELECT 'e' || ctid::text || xmin::text FROM pg_enum
     WHERE enumtypid IN (SELECT oid FROM alltyp)
    UNION ALL
    SELECT 's' || ctid::text || xmin::text FROM pg_sequence WHERE seqrelid IN (SELECT oid FROM rel)
    UNION ALL  -- ownership of sequences, identity columns, extension membership
    SELECT 'p' || ctid::text || xmin::text FROM pg_depend
     WHERE (classid = 'pg_class'::regclass AND objid IN (SELECT oid FROM rel))
        OR (refclassid = 'pg_class'::regclass AND refobjid IN (SELECT oid FROM rel))
    UNION ALL
    SELECT 'x' || ctid::text || xmin::text FROM pg_extension
    UNION ALL
    SELECT 'o' || ctid::text || xmin::text FROM pg_opclass
    UNION ALL
    SELECT 'w' || ctid::text || xmin::text FROM pg_am
    UNION ALL
    SELECT 'f' || ctid::text || xmin::text FROM pg_proc
     WHERE oid IN (SELECT refobjid FROM dep WHERE refclassid = 'pg_proc'::regclass)
    UNION ALL
    SELECT 'r' || ctid::text || xmin::text FROM pg_operator
     WHERE oid IN (SELECT refobjid FROM dep WHERE refclassid = 'pg_operator'::regclass)
    UNION ALL
    SELECT 'l' || ctid::text || xmin::text FROM pg_collation
     WHERE oid IN (SELECT refobjid FROM dep WHERE refclassid = 'pg_collation'::regclass)
)
SELECT current_setting('server_version_num') || ':' || count(*)::text || ':'
       || coalesce(sum(hashtextextended(t, 0)::numeric), 0)::text AS fingerprint,
       pg_snapshot_xmin(pg_current_snapshot())::text::numeric AS horizon
  FROM tuples
