-- schemaheal: the catalog fingerprint of the schemas a manifest owns, in one query.
-- Every catalog row that inspection reads, or whose name its deparsed texts print, contributes
-- its tuple identity (ctid) and the transaction that wrote it (xmin), hashed together into 64
-- bits (hash_record_extended: no text is built; its seed tells the catalogs apart). Any transactional catalog
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
-- Sets of oids are arrays, so that each catalog is read through its index (= ANY (array)), one
-- array per read (an OR of two makes it a sequential scan); a catalog read for both its rows and
-- their namespaces is read once (a CTE used twice), and pg_class, which has no index on the
-- namespace, is scanned once for our schemas' relations (rows and oids).
WITH RECURSIVE ns AS (
    SELECT array_agg(oid) AS oids FROM pg_namespace WHERE nspname = ANY ($1::text[])
), own_rows AS (  -- pg_class has no index on the namespace: read once, rows and oids
    SELECT oid, ctid, xmin, relnamespace AS nsp FROM pg_class
     WHERE relnamespace = ANY ((SELECT oids FROM ns)::oid[])
), own AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM own_rows
), below(oid) AS (  -- partitions (of tables and indexes) at any depth, in whatever schema
    SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY ((SELECT oids FROM own)::oid[])
    UNION
    SELECT h.inhrelid FROM below b JOIN pg_inherits h ON h.inhparent = b.oid
), belows AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM below
), rel AS (  -- ours: the relations of our schemas and the partitions below them
    SELECT (SELECT oids FROM own) || (SELECT oids FROM belows) AS oids
), tcons AS (  -- the constraints of our tables: read once, for the keys' targets and the rows
    SELECT oid, contype, confrelid FROM pg_constraint
     WHERE conrelid = ANY ((SELECT oids FROM rel)::oid[])
), fks AS (  -- the tables our foreign keys point at
    SELECT coalesce(array_agg(confrelid), '{}') AS oids FROM tcons WHERE contype = 'f'
), refrel AS (  -- our relations and those our foreign keys point at
    SELECT (SELECT oids FROM rel) || (SELECT oids FROM fks) AS oids
), defs AS (
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_attrdef
     WHERE adrelid = ANY ((SELECT oids FROM rel)::oid[])
), cons AS (  -- of our tables, and of our domains (few namespaces: a cheap scan)
    SELECT coalesce(array_agg(oid), '{}') AS oids FROM (
        SELECT oid FROM tcons
        UNION ALL
        SELECT oid FROM pg_constraint
         WHERE contypid <> 0 AND connamespace = ANY ((SELECT oids FROM ns)::oid[])) AS x
), dep AS (  -- what our objects refer to by name: functions, operators, types, collations, ...
    SELECT classid, refclassid, refobjid, refobjsubid FROM pg_depend
     WHERE (classid = 'pg_class'::regclass AND objid = ANY ((SELECT oids FROM rel)::oid[]))
        OR (classid = 'pg_attrdef'::regclass AND objid = ANY ((SELECT oids FROM defs)::oid[]))
        OR (classid = 'pg_constraint'::regclass AND objid = ANY ((SELECT oids FROM cons)::oid[]))
), atts AS (  -- the columns of those relations (system columns never change)
    SELECT ctid, xmin, atttypid FROM pg_attribute
     WHERE attrelid = ANY ((SELECT oids FROM refrel)::oid[]) AND attnum > 0
), typ AS (  -- our types, the types of our columns, and what they refer to
    SELECT array_agg(t) AS oids FROM (
        SELECT oid FROM pg_type WHERE typnamespace = ANY ((SELECT oids FROM ns)::oid[])
        UNION ALL
        SELECT atttypid FROM atts
        UNION ALL
        SELECT refobjid FROM dep WHERE refclassid = 'pg_type'::regclass) AS x(t)
), alltyp AS (  -- and their element types
    SELECT (SELECT oids FROM typ) || coalesce(array_agg(typelem), '{}') AS oids FROM pg_type
     WHERE oid = ANY ((SELECT oids FROM typ)::oid[]) AND typelem <> 0
), refs AS (  -- the objects `dep` names, by catalog; not columns: a column's relation is ours
    SELECT refclassid, array_agg(refobjid) AS oids  -- or one our foreign keys point at (refrel)
      FROM dep WHERE refobjsubid = 0 GROUP BY refclassid
), cls AS (  -- our relations, those our FKs point at, and every one we name (sequences, ...):
    SELECT ctid, xmin, nsp FROM own_rows  -- those of our schemas, read above; the others by oid
    UNION ALL
    SELECT ctid, xmin, relnamespace FROM pg_class
     WHERE oid = ANY ((SELECT oids FROM belows)::oid[] || (SELECT oids FROM fks)::oid[]
                      || (SELECT oids FROM refs WHERE refclassid = 'pg_class'::regclass)::oid[])
       AND NOT relnamespace = ANY (coalesce((SELECT oids FROM ns)::oid[], '{}'))
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
), exts AS (
    SELECT ctid, xmin, extnamespace AS nsp FROM pg_extension
), named(nsp) AS (  -- the namespaces whose names the deparsed texts print
    SELECT nsp FROM cls UNION ALL SELECT nsp FROM typs UNION ALL SELECT nsp FROM procs
    UNION ALL SELECT nsp FROM oprs UNION ALL SELECT nsp FROM colls UNION ALL SELECT nsp FROM tscfgs
    UNION ALL SELECT nsp FROM tsdicts UNION ALL SELECT nsp FROM exts
    UNION ALL  -- operator classes: all are hashed below, the namespaces only of those we use
    SELECT opcnamespace FROM pg_opclass
     WHERE oid = ANY ((SELECT oids FROM refs WHERE refclassid = 'pg_opclass'::regclass)::oid[])
    UNION ALL  -- regnamespace constants
    SELECT unnest(oids) FROM refs WHERE refclassid = 'pg_namespace'::regclass
), tuples(t) AS (
    SELECT hash_record_extended((ctid, xmin), 1) FROM pg_namespace  -- ours by name, present or not
     WHERE nspname = ANY ($1::text[]) OR oid = ANY (ARRAY(SELECT DISTINCT nsp FROM named))
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 2) FROM cls
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 3) FROM atts
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 4) FROM pg_attrdef WHERE oid = ANY ((SELECT oids FROM defs)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 5) FROM pg_constraint
     WHERE oid = ANY ((SELECT oids FROM cons)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 6) FROM pg_index
     WHERE indrelid = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 7) FROM pg_description
     WHERE objoid = ANY ((SELECT oids FROM rel)::oid[]) OR objoid = ANY ((SELECT oids FROM alltyp)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 8) FROM typs
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 9) FROM pg_enum
     WHERE enumtypid = ANY ((SELECT oids FROM alltyp)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 10) FROM pg_sequence
     WHERE seqrelid = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL  -- ownership of sequences (OWNED BY) and identity columns' sequences
    SELECT hash_record_extended((ctid, xmin), 11) FROM pg_depend
     WHERE classid = 'pg_class'::regclass AND objid = ANY ((SELECT oids FROM rel)::oid[])
       AND deptype IN ('a', 'i')
    UNION ALL  -- our tables' parents and partitions
    SELECT hash_record_extended((ctid, xmin), 12) FROM pg_inherits
     WHERE inhrelid = ANY ((SELECT oids FROM rel)::oid[]) OR inhparent = ANY ((SELECT oids FROM rel)::oid[])
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 13) FROM exts
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 14) FROM pg_opclass
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 15) FROM pg_am
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 16) FROM procs
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 17) FROM oprs
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 18) FROM colls
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 19) FROM tscfgs
    UNION ALL
    SELECT hash_record_extended((ctid, xmin), 20) FROM tsdicts
)
SELECT current_setting('server_version_num') || ':' || count(*)::text || ':'
       || coalesce(sum(t), 0)::text AS fingerprint,
       pg_snapshot_xmin(pg_current_snapshot())::text::numeric AS horizon
  FROM tuples
