-- schemaheal: the catalog read. A fixed set of queries, whatever the number of tables; each
-- returns plain rows (asyncpg decodes them in C). $1 is always the schemas a manifest owns.
-- Arrays of numbers come as text ('1 2'): a row of scalars is hashable, so an unchanged table's
-- rows find the value built from them last time (inspect_tables.py), and text decodes faster.
-- Run with search_path = pg_catalog, so format_type() qualifies every user type.
-- In this order: inspect works on each query's rows while the server runs the next one, so the
-- long reads (columns, constraints, indexes) follow what their rows are checked against, and the
-- short ones come last.

-- name: server
SELECT current_setting('server_version_num')::int AS server_version,
       current_setting('block_size')::int AS block_size,
       ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspname = ANY ($1::text[])) AS schemas;

-- name: opclasses
-- Operator classes that are not a type's default: only those are worth naming.
SELECT oid, opcname AS name FROM pg_opclass WHERE NOT opcdefault;

-- name: tables
SELECT c.oid, n.nspname AS schema, c.relname AS name, d.description AS comment,
       c.relpages::bigint AS pages,  -- the planner's estimate: no file system call per table
       c.relkind = 'p' AS partitioned,
       -- a partitioned table's partitions (schema, name), and a partition's parent
       ARRAY(SELECT pn.nspname::text FROM pg_inherits h JOIN pg_class pc ON pc.oid = h.inhrelid
               JOIN pg_namespace pn ON pn.oid = pc.relnamespace
              WHERE h.inhparent = c.oid AND c.relkind = 'p' ORDER BY pc.oid) AS part_schemas,
       ARRAY(SELECT pc.relname::text FROM pg_inherits h JOIN pg_class pc ON pc.oid = h.inhrelid
              WHERE h.inhparent = c.oid AND c.relkind = 'p' ORDER BY pc.oid) AS part_names,
       (SELECT ARRAY[pn.nspname::text, pc.relname::text] FROM pg_inherits h
          JOIN pg_class pc ON pc.oid = h.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE h.inhrelid = c.oid AND c.relispartition) AS parent
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid
       AND d.objsubid = 0
 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY ($1::text[]);

-- name: partitions
-- Each partitioned table of the schemas (level 0: its own key) and every partition below it at
-- any depth (a partition may live in another schema), with its parent, its own key when it is
-- partitioned (NULL for a key expression), its constraints and its invalid indexes. From
-- pg_partitioned_table and pg_inherits: no row and no scan of pg_class without partitioning.
WITH RECURSIVE below (root, relid, parent, level) AS (
  SELECT pt.partrelid, pt.partrelid, NULL::oid, 0 FROM pg_partitioned_table pt
   WHERE (SELECT pn.nspname FROM pg_class p JOIN pg_namespace pn ON pn.oid = p.relnamespace
           WHERE p.oid = pt.partrelid) = ANY ($1::text[])
  UNION ALL
  SELECT b.root, h.inhrelid, h.inhparent, b.level + 1 FROM below b
    JOIN pg_inherits h ON h.inhparent = b.relid)
SELECT b.root, pn.nspname AS schema, pc.relname AS name, qn.nspname AS parent_schema,
       q.relname AS parent_name, pc.relkind = 'p' AS partitioned, pc.relkind = 'f' AS foreign_table,
       CASE WHEN pc.relkind = 'p' THEN ARRAY(
         SELECT a.attname::text FROM pg_partitioned_table pt
          CROSS JOIN unnest(pt.partattrs::int2[]) WITH ORDINALITY k(num, pos)
           LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.num
          WHERE pt.partrelid = pc.oid ORDER BY k.pos) END AS key,
       ARRAY(SELECT co.conname::text FROM pg_constraint co WHERE co.conrelid = pc.oid
              ORDER BY 1) AS constraints,
       ARRAY(SELECT co.conname::text FROM pg_constraint co WHERE co.conrelid = pc.oid
                AND NOT co.convalidated ORDER BY 1) AS unvalidated,
       ARRAY(SELECT ic.relname::text FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
              WHERE x.indrelid = pc.oid AND NOT x.indisvalid ORDER BY 1) AS invalid
  FROM below b
  -- looked up by oid row by row (OFFSET 0 keeps them so), as above: a hash join would read all
  -- of pg_class
  CROSS JOIN LATERAL (SELECT c.oid, c.relname, c.relkind, c.relnamespace FROM pg_class c
                       WHERE c.oid = b.relid OFFSET 0) pc
  JOIN pg_namespace pn ON pn.oid = pc.relnamespace
  LEFT JOIN LATERAL (SELECT c.relname, c.relnamespace FROM pg_class c
                      WHERE c.oid = b.parent OFFSET 0) q ON true
  LEFT JOIN pg_namespace qn ON qn.oid = q.relnamespace
 ORDER BY b.root, b.level, pc.oid;

-- name: columns
-- Every column of the inspected tables, and of the tables their foreign keys point at (for
-- naming referenced columns); attnum orders them and resolves key column numbers.
SELECT a.attrelid AS rel, a.attnum AS num, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(ad.adbin, ad.adrelid) AS expr, a.attidentity::text AS identity,
       a.attgenerated::text AS generated, d.description AS comment
  FROM pg_attribute a
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN pg_description d ON d.classoid = 'pg_class'::regclass AND d.objoid = a.attrelid
       AND d.objsubid = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
   AND a.attrelid IN (
       SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY ($1::text[])
       UNION
       SELECT co.confrelid FROM pg_constraint co
         JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE co.contype = 'f' AND n.nspname = ANY ($1::text[])
          -- as in the constraints query: not the per-partition copies of a key pointing at a
          -- partitioned table (their partitions' columns would be read for nothing)
          AND NOT (co.conparentid <> 0 AND EXISTS (SELECT FROM pg_constraint up
                   WHERE up.oid = co.conparentid AND up.conrelid = co.conrelid)))
 ORDER BY a.attrelid, a.attnum;

-- name: constraints
SELECT co.conrelid AS rel, co.conname AS name, co.contype::text AS type, co.convalidated AS valid,
       array_to_string(co.conkey, ' ') AS keys, co.confrelid AS ref_rel, fn.nspname AS ref_schema,
       fc.relname AS ref_table, array_to_string(co.confkey, ' ') AS ref_keys,
       co.confdeltype::text AS on_delete, co.confupdtype::text AS on_update,
       co.condeferrable AS deferrable, co.condeferred AS deferred,
       CASE WHEN co.contype = 'c' THEN pg_get_expr(co.conbin, co.conrelid) END AS expr,
       ci.relname AS index, COALESCE(ix.indnullsnotdistinct, false) AS nulls_not_distinct
  FROM pg_constraint co
  JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class fc ON fc.oid = co.confrelid
  LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
  LEFT JOIN pg_class ci ON ci.oid = co.conindid
  LEFT JOIN pg_index ix ON ix.indexrelid = co.conindid AND co.contype = 'u'
 WHERE co.contype IN ('p', 'u', 'f', 'c') AND n.nspname = ANY ($1::text[])
   -- not the per-partition keys PostgreSQL adds to a table whose foreign key points at a
   -- partitioned table (their parent is the declared key, on the same table)
   AND NOT (co.conparentid <> 0 AND co.contype = 'f' AND EXISTS (
       SELECT FROM pg_constraint up WHERE up.oid = co.conparentid AND up.conrelid = co.conrelid));

-- name: indexes
-- Key columns by number (indkey; 0 = an expression), their options and operator classes;
-- expression texts only for indexes that have expressions.
SELECT x.indrelid AS rel, i.relname AS name, x.indisunique AS unique,
       x.indisvalid AND x.indisready AS valid, am.amname AS method, x.indnkeyatts AS key_count,
       x.indkey::text AS keys, x.indoption::text AS options, x.indclass::text AS opclasses,
       pg_get_expr(x.indpred, x.indrelid) AS predicate, i.reloptions AS storage,
       CASE WHEN x.indexprs IS NOT NULL THEN
            ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
                    FROM generate_series(1, x.indnkeyatts::int) k) END AS key_texts
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_am am ON am.oid = i.relam
 WHERE n.nspname = ANY ($1::text[]);

-- name: extensions
SELECT e.extname AS name, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace;

-- name: enums
SELECT n.nspname AS schema, t.typname AS name,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder) AS labels
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'e' AND n.nspname = ANY ($1::text[]);

-- name: sequences
SELECT n.nspname AS schema, c.relname AS name, format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min_value,
       s.seqmax AS max_value, s.seqcycle AS cycle, s.seqcache AS cache,
       own.relname AS owner_table, own_col.attname AS owner_column
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LEFT JOIN pg_class own ON own.oid = d.refobjid
  LEFT JOIN pg_attribute own_col ON own_col.attrelid = d.refobjid AND own_col.attnum = d.refobjsubid
 WHERE n.nspname = ANY ($1::text[])
   AND d.deptype IS DISTINCT FROM 'i';  -- identity columns' own sequences are not objects here
